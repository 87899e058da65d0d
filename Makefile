# The tests, and the Python environment they need. `go run ./dev` needs none of
# this, but its notebook runs need the environment: `make venv` is the one way to
# make it (the local stack's messages say the same).
PYTHON ?= python3
VENV := .venv
export NBTRACE_REQUIRE_PYTHON := 1

.PHONY: test test-go test-python venv fuzz clean

## test: every test, Go and Python (the command CI runs)
test: venv test-go test-python

## venv: the Python environment for the notebook (tests, local notebook runs), from the pinned requirements
venv: $(VENV)/.installed
$(VENV)/.installed: notebooks/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r notebooks/requirements.txt
	touch $@

test-go:
	test -z "$$(gofmt -l .)" || { echo "not gofmt-ed:"; gofmt -l .; exit 1; }
	go vet ./...
	go test ./...

test-python: venv
	$(VENV)/bin/ruff check notebooks
	$(VENV)/bin/ruff format --check notebooks
	$(VENV)/bin/pytest -q notebooks

## fuzz: each fuzz target for FUZZTIME (5s by default)
FUZZTIME ?= 5s
fuzz:
	go test ./handler/internal/hostproto -run '^$$' -fuzz '^FuzzDecodeInvocation$$' -fuzztime $(FUZZTIME)
	go test ./handler/internal/hostproto -run '^$$' -fuzz '^FuzzExtractParent$$' -fuzztime $(FUZZTIME)
	go test ./handler/manifest -run '^$$' -fuzz '^FuzzParseFunction$$' -fuzztime $(FUZZTIME)
	go test ./handler/manifest -run '^$$' -fuzz '^FuzzRoute$$' -fuzztime $(FUZZTIME)

clean:
	rm -rf $(VENV) .nbtrace dist
