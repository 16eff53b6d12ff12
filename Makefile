# The README's test command is `make test`.
.PHONY: test test-go test-bench test-client run

test: test-go test-bench test-client

test-go:
	go test -race ./...

# Every benchmark once, smaller (-short), for correctness: their timings are for a quiet machine.
test-bench:
	go test -short -run '^$$' -bench . -benchtime 1x ./...

test-client:
	@if [ -d clients/typescript ]; then cd clients/typescript && npm ci --no-audit --no-fund && npm test; fi

run:
	go run ./cmd/caddy run --config testdata/example.Caddyfile
