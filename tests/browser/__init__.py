"""The HTML report in a real browser (check_report.py: headless Chromium through Selenium)."""
