# The README's test command is `make test`.
.PHONY: test test-go test-client run

test: test-go test-client

test-go:
	go test -race ./...

test-client:
	@if [ -d clients/typescript ]; then cd clients/typescript && npm ci --no-audit --no-fund && npm test; fi

run:
	go run ./cmd/caddy run --config testdata/example.Caddyfile
