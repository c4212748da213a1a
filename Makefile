# Two commands do everything on a fresh machine (Python ≥ 3.11 with venv); a third looks at the report:
#   make reproduce   set up .venv, run the workflow on config/config.yaml, build results/report.html
#   make test        set up .venv, then run the test suite
#   make publish     docs/results/config/ from results/ (a clean checkout's run), then the README's
#                    generated results blocks (python -m lmt.docs)
#   make check-report  open results/report.html in a headless Chromium (apt-get install chromium
#                    chromium-driver), fail on a JavaScript error or a broken figure, save screenshots
PYTHON ?= python3
VENV ?= .venv
CORES ?= all
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: reproduce test check-report install dry-run publish clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

reproduce: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --workflow-profile workflow/profiles/default
	$(BIN)/snakemake --workflow-profile workflow/profiles/default --report results/report.html \
		--report-stylesheet workflow/report/report.css

dry-run: $(STAMP)
	$(BIN)/snakemake -n --workflow-profile workflow/profiles/default

publish: $(STAMP)
	$(BIN)/lmt-bench publish results --config config/config.yaml
	$(BIN)/python -m lmt.docs

test: $(STAMP)
	$(BIN)/python -m pytest

check-report: $(STAMP)
	$(BIN)/python tests/browser/check_report.py results/report.html --screenshots results/report_screenshots

clean:
	rm -rf results/*/ results/report.html .snakemake
