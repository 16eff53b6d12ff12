package behest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/behest/caddy-behest/limiter"
	"github.com/behest/caddy-behest/meter"
	"github.com/behest/caddy-behest/verifier"
)

// maxReservedOutput caps a worst case so cost arithmetic cannot overflow; no limit has room for
// it anyway.
const maxReservedOutput = 1 << 40

// requestError is the 400 for a body meter cannot read, naming the field at fault.
func requestError(err error) *apiError {
	var re *meter.RequestError
	if errors.As(err, &re) {
		return badRequest("invalid_request", re.Param, re.Message)
	}
	return badRequest("invalid_request", "", err.Error())
}

// settleTimeout bounds settling after the response: the request's own context may be gone.
const settleTimeout = 5 * time.Second

// admission is what proxy reserved for a request, to settle it afterwards.
type admission struct {
	model     string
	prompt    int64 // worst-case input tokens
	output    int64 // worst-case output tokens
	cost      limiter.Nanos
	streaming bool
}

// proxy admits a verified request against its limits, passes it on, meters the response and
// settles the reservation with what the provider reported.
func (h *Handler) proxy(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler,
	p *project, id *verifier.Identity, sid string) error {
	t := p.tierOf(id.Tier)
	var adm admission
	if r.Method == http.MethodPost && meter.EndpointOf(r.URL.Path) != meter.Other {
		var err error
		if adm, err = h.prepareBody(r, p, t); err != nil {
			return h.writeError(w, r, p, err)
		}
	}

	req := h.limitRequest(p, t, id, sid, adm.model, adm.prompt+adm.output, adm.cost)
	res, dec, err := h.store.Reserve(r.Context(), h.now(), req)
	if err != nil {
		return h.writeError(w, r, p, err)
	}
	if dec.Revoked {
		return h.writeError(w, r, p, errRevoked)
	}
	rl := rateLimitHeaders(t, dec)
	rl.apply(w.Header())
	if !dec.Allowed {
		return h.writeError(w, r, p, refusal(dec))
	}

	metrics.requests.WithLabelValues(p.id, "ok").Inc()
	// The provider must answer uncompressed so the usage can be read; Caddy's encode directive
	// can still compress for the client.
	r.Header.Del("Accept-Encoding")
	mw := &meterWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		origin: h.cors.origin(r, p), rl: rl}
	defer func() {
		// Settle even when next panics: the concurrency slot must always be freed.
		used := h.usageOf(p, mw, adm)
		metrics.tokens.WithLabelValues(p.id, "input").Add(float64(used.InputTokens))
		metrics.tokens.WithLabelValues(p.id, "output").Add(float64(used.OutputTokens))
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), settleTimeout)
		defer cancel()
		if err := h.store.Settle(ctx, h.now(), res, used); err != nil {
			h.logger.Error("settling a request failed", zap.String("project", p.id), zap.String("user", id.UserID), zap.Error(err))
		}
	}()
	return next.ServeHTTP(mw, r)
}

// prepareBody reads a model request's body, bounds its worst case and rewrites it so the
// provider honours that bound and reports its usage.
func (h *Handler) prepareBody(r *http.Request, p *project, t *tier) (admission, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, h.MaxRequestBody+1))
	if err != nil {
		return admission{}, badRequest("invalid_request", "", "The request body could not be read.")
	}
	if int64(len(body)) > h.MaxRequestBody {
		return admission{}, &apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error",
			code: "request_too_large", message: "The request body is over " + strconv.FormatInt(h.MaxRequestBody, 10) + " bytes."}
	}
	info, err := meter.Inspect(r.URL.Path, body)
	if err != nil {
		return admission{}, requestError(err)
	}
	adm := admission{model: info.Model, prompt: int64(len(body)), streaming: info.Stream}
	var setCap int64
	switch {
	case info.Endpoint == meter.Embeddings:
	case info.HasMaxOutput:
		if t.maxOutput > 0 && info.MaxOutput > t.maxOutput {
			return admission{}, badRequest("max_tokens_exceeded", info.MaxOutputField,
				"This request asks for "+strconv.FormatInt(info.MaxOutput, 10)+" output tokens ("+info.MaxOutputField+
					"); tier "+t.name+" allows at most "+strconv.FormatInt(t.maxOutput, 10)+".")
		}
		adm.output = info.MaxOutput
	case t.maxOutput > 0:
		setCap = t.maxOutput
	case t.bounded:
		setCap = defaultOutputCap
	}
	if setCap > 0 {
		adm.output = setCap
	}
	// Each choice (n, best_of, several prompts) can use the whole cap.
	adm.output = min(info.OutputBound(adm.output), maxReservedOutput)
	if pr, ok := p.priceOf(info.Model); ok {
		adm.cost = pr.cost(adm.prompt, adm.output)
	} else if t.costBudget {
		return admission{}, badRequest("model_not_priced", "model",
			"The model "+strconv.Quote(info.Model)+" has no price in this project, and a cost budget applies.")
	} else {
		h.logUnpriced(p, info.Model)
	}
	out, err := meter.Rewrite(body, info, setCap, info.Stream && p.streamUsage)
	if err != nil {
		return admission{}, requestError(err)
	}
	r.Body = io.NopCloser(bytes.NewReader(out))
	r.ContentLength = int64(len(out))
	r.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return adm, nil
}

var unpricedLogged sync.Map // project\x00model -> struct{}

func (h *Handler) logUnpriced(p *project, model string) {
	if _, seen := unpricedLogged.LoadOrStore(p.id+"\x00"+model, struct{}{}); !seen {
		h.logger.Warn("model has no price; it costs 0", zap.String("project", p.id), zap.String("model", model))
	}
}

// usageOf is what a finished request is charged: the usage the provider reported; nothing for a
// provider error; the reservation when the response was cut off or carried no usage.
func (h *Handler) usageOf(p *project, mw *meterWriter, adm admission) limiter.Usage {
	if u, ok := mw.usage(); ok {
		model := u.Model
		pr, priced := p.priceOf(model)
		if !priced {
			model = adm.model
			pr, priced = p.priceOf(model)
		}
		var cost limiter.Nanos
		if priced {
			cost = pr.cost(u.InputTokens, u.OutputTokens)
		}
		return limiter.Usage{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, Cost: cost}
	}
	if mw.status == 0 || mw.status >= 400 {
		return limiter.Usage{}
	}
	return limiter.Usage{InputTokens: adm.prompt, OutputTokens: adm.output, Cost: adm.cost}
}

func (h *Handler) limitRequest(p *project, t *tier, id *verifier.Identity, sid, model string, tokens int64, cost limiter.Nanos) limiter.Request {
	iat := id.IssuedAt
	if iat.IsZero() {
		// A token without iat cannot show it was issued after a revocation.
		iat = time.Unix(1, 0)
	}
	return limiter.Request{
		Project: p.id, User: id.UserID, Session: sid, Tier: t.name, Model: model,
		Limits: t.limits, ProjectCostPerMonth: p.costPerMonth,
		Tokens: tokens, Cost: cost, IssuedAt: iat,
	}
}

// refusal is the 429 for a refused reservation.
func refusal(dec limiter.Decision) *apiError {
	e := &apiError{status: http.StatusTooManyRequests, retryAfter: dec.RetryAfter}
	name := dec.Refused.String()
	if dec.Refused.Quota() {
		e.typ, e.code, e.noRetry = "insufficient_quota", "insufficient_quota", true
		e.message = "You exceeded your quota (" + name + "); it renews in " + fmtDuration(dec.RetryAfter) + "."
		return e
	}
	e.typ, e.code = "requests", "rate_limit_exceeded"
	if dec.Refused == limiter.LimitTokensPerMinute {
		e.typ = "tokens"
	}
	if dec.Never {
		// This request alone is over the limit: waiting cannot help, so the SDKs must not retry.
		e.noRetry = true
		e.message = "This request's worst case is over the " + name + " limit by itself; ask for fewer tokens (max_tokens) or a smaller prompt."
		return e
	}
	e.message = "Rate limit reached (" + name + "); try again in " + fmtDuration(dec.RetryAfter) + "."
	return e
}

// fmtDuration writes a duration as OpenAI's reset headers do: 1s, 6m0s, 51.189s.
func fmtDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return d.Round(time.Millisecond).String()
}
