# breast-reader: `make run` (GUI on the demo study) and `make test` (whole suite) do all set-up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-slow lint bench bundle clean

install: $(STAMP)

# torch first: `torch==2.13.0` resolves to the local CPU build here; any other spec pulls CUDA.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q torchvision==0.28.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

run: install
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		$(BIN)/breast-reader demo; \
	else \
		mkdir -p screenshots; \
		QT_QPA_PLATFORM=offscreen $(BIN)/breast-reader demo --screenshot screenshots/demo.png && \
		echo "No display found: ran the demo offscreen; screenshot saved to $$(pwd)/screenshots/demo.png"; \
	fi

# mypy: both packages, --strict, as configured in pyproject.toml ([tool.mypy]); seconds with its
# cache, about two minutes from a clean checkout.
test: install
	QT_QPA_PLATFORM=offscreen $(BIN)/lint-imports
	$(BIN)/python -m mypy
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

lint: install
	$(BIN)/lint-imports
	$(BIN)/python -m mypy

test-slow: install
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m slow

# Every benchmark writes one JSON object to benchmarks/results/NAME.json (ratios measured side by
# side in one run); docs/benchmarks.md records the figures with the machine they came from.
BENCHES := io patch-map score gradcam train mrmc threads
bench: install
	mkdir -p benchmarks/results
	for b in $(BENCHES); do \
		echo "== bench $$b"; \
		$(BIN)/breast-engine bench $$b --json > benchmarks/results/$$b.json || exit 1; \
		cat benchmarks/results/$$b.json; \
	done
	# GUI: start-up to first image, open/score stalls per demo case, GUI vs bench score, 5 000-case worklist
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m reader_app.bench_perf all --json benchmarks/results/gui-perf.json

bundle: install
	$(BIN)/python -m pip install -q -e ".[bundle]"
	$(BIN)/pyinstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller packaging/breast-reader.spec

clean:
	rm -rf build dist screenshots .pytest_cache
