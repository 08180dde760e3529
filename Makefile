# ocrbridge developer commands. Every target installs what it needs (scripts/setup.sh).
.PHONY: setup test demo dev invoke chaos chaos-failover crashpoints mutants fuzz package bench bench-quality bench-split bench-preprocess bench-preprocess-ab bench-second-opinion moto-start moto-stop lint vendor-sim

## test: set up, start moto, run fmt/clippy/cfn-lint and every test, stop moto
test:
	scripts/test.sh

## demo: run the pipeline on the local stack with the sample documents
demo:
	scripts/demo.sh

## dev: the demo, then the stack stays up for `aws --endpoint-url ... s3 cp`
dev:
	DEV=1 scripts/demo.sh

## invoke: `sam local invoke` one function (Docker) against the local stack, e.g.
## make invoke FN=intake EVENT=events/sqs-s3-put.json  (SAM_BUILD=1 to use a real sam build)
invoke:
	scripts/sam-invoke.sh $(FN) $(EVENT)

## demo takes VENDOR=sim|textract|azure|mindee: the functions talk to the simulator's twin of it

## chaos: the big chaos run (1,000 documents, every fault on); `make test` runs 140 (100 per twin)
## CHAOS_VENDOR=sim|textract|azure|mindee|all picks the vendor (default sim, both fallbacks)
chaos:
	CHAOS_DOCS=$${CHAOS_DOCS:-1000} scripts/chaos.sh

## chaos-failover: issue #29's failover run with FAILOVER_DOCS (default 40) documents per phase:
## a route of two twins, the first through an outage, an auth revocation and slowness, each
## recovered; prints each phase's figures; `make test` runs it with 6
chaos-failover:
	scripts/chaos-failover.sh

## crashpoints: every failpoint (before and after each AWS write and vendor call) under crash,
## error and stall, on every twin without idempotency and both policies; `make test` runs the gate
## (each failpoint and action once). Prints failpoints x actions x configurations, violations.
crashpoints:
	scripts/crashpoints.sh

## fuzz: every cargo-fuzz target explores for FUZZ_SECONDS (default 600) each; a crash is kept in
## fuzz/regressions/<target>/ to commit with its test. make test replays the committed inputs (tests/fuzz_replay.rs).
fuzz:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-600} scripts/fuzz.sh explore

## mutants: remove each exactly-once guard on purpose (scripts/mutants/*.patch) and require the
## test named for it to fail; needs a clean tree
mutants:
	scripts/mutants.sh

## package: sam build for deployment (cargo lambda, arm64, release); not part of make test
package:
	scripts/package.sh

## bench: intake validation (1 GB object, big PDF, big image), submit throughput vs the vendor's
## rate limit (R = 10 and 50), submissions plus polls vs the Azure twin's rate limit, webhook verification vs raw HMAC, the happy path's AWS requests per document and
## overhead, Textract synchronous against asynchronous, and cold-start init per function; figures to stdout,
## goodput, 429s, init, requests per document and overhead each beside its goal (met / MISSED)
bench:
	scripts/bench-intake.sh
	scripts/bench-submit.sh 150 10
	scripts/bench-submit.sh 500 50
	scripts/bench-poll.sh 120 10
	scripts/bench-poll.sh 300 50
	scripts/bench-webhook.sh
	EMULATOR=1 scripts/bench-webhook.sh
	cargo bench -p ocrbridge --bench verify
	scripts/bench-pipeline.sh
	scripts/bench-textract-sync.sh
	scripts/bench-init.sh
	scripts/bench-preprocess.sh
	scripts/bench-split.sh

## bench-split: splitting a PDF past the vendor's page limit into parts (release): time, per MB
## and peak RSS for 400 to 3,000 pages of 100 KB each, one process each (PAGES="400" for fewer)
bench-split:
	scripts/bench-split.sh

## bench-preprocess: preprocessing's time per MB and peak RSS (release), phone photos of 1 to 40
## megapixels, one process each (SIZES="1 4" for fewer)
bench-preprocess:
	scripts/bench-preprocess.sh

## bench-preprocess-ab: issue #30's A/B audit: the pack with degraded variants, run with
## PREPROCESS=off and then each of SETTINGS (default: on crop deskew contrast), each paired with
## the off run by ocrbridge quality compare (about 2½ minutes a run, in release, with a fresh moto)
bench-preprocess-ab:
	scripts/bench-preprocess-ab.sh

## bench-quality: the quality benchmark pack (bench/packs/default, 52 documents) through the
## pipeline on the local stack, scored against the pinned baseline; PIN=1 pins this run,
## MODEL_UPDATE=total:0.5 makes the simulator silently worse, VENDOR=… picks the vendor twin;
## PREPROCESS=off|on|deskew,… sets intake's preprocessing, PACK=.local/packs/degraded the pack
## (ocrbridge-local degrade-pack writes it); ocrbridge quality compare A/run.json B/run.json pairs two runs
bench-quality:
	scripts/bench-quality.sh

## bench-second-opinion: issue #29's second opinion on the pack: the first vendor alone, the
## second alone, and both with SECOND_OPINION; MODEL_UPDATE (default total:0.3) makes the first
## read totals worse, since the twins share one engine
bench-second-opinion:
	scripts/bench-second-opinion.sh

setup:
	scripts/setup.sh

moto-start: setup
	scripts/moto.sh start

moto-stop:
	scripts/moto.sh stop

lint: setup
	cargo fmt --all --check
	.venv/bin/cfn-lint template.yaml
	cargo clippy --workspace --all-targets --locked -- -D warnings

## vendor-sim: the local OCR vendor on 127.0.0.1:8090 (see tools/vendor-sim/README.md)
vendor-sim: setup
	cargo run -p vendor-sim -- --api-key $${VENDOR_SIM_API_KEY:-sk_local_0123456789abcdef}
