package behest

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/behest/caddy-behest/limiter"
	"github.com/behest/caddy-behest/meter"
	"github.com/behest/caddy-behest/verifier"
)

// maxModelName bounds the model name, which becomes a usage key.
const maxModelName = 256

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

// errNotServed refuses what the gateway cannot meter, or what would show one user the data every
// user of the provider key shares (stored completions, files, responses by id).
var errNotServed = &apiError{status: http.StatusForbidden, typ: "invalid_request_error", code: "permission_denied",
	message: "This endpoint is not served to end-user tokens: the gateway serves the model calls it can meter " +
		"(OpenAI chat/completions, completions, responses and embeddings; Anthropic messages; Gemini generateContent, " +
		"streamGenerateContent, embedContent and batchEmbedContents), token counts and model listings."}

// route tells which API a model request speaks and what it is, once: its dialect shapes every
// answer from here on. A path the gateway and the provider could read two ways is an error.
func route(r *http.Request) (meter.Route, error) {
	if err := meter.CheckPath(r.URL.EscapedPath()); err != nil {
		return meter.Route{Dialect: meter.OpenAI}, requestError(err)
	}
	rt, err := meter.Recognize(r)
	if err != nil {
		return rt, requestError(err)
	}
	return rt, nil
}

// admission is what proxy reserved for a request, to settle it afterwards.
type admission struct {
	metered bool // a model request whose response carries usage
	model   string
	prompt  int64 // worst-case input tokens
	output  int64 // worst-case output tokens
	cost    limiter.Nanos
}

// proxy admits a verified request against its limits, passes it on, meters the response and
// settles the reservation with what the provider reported.
func (h *Handler) proxy(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler,
	rt meter.Route, p *project, t *tier, id *verifier.Identity, sid string, ex *exchange) error {
	access := &ex.access
	var adm admission
	switch rt.Kind {
	case meter.Metered:
		var err error
		if adm, err = h.prepareBody(r, rt, p, t, &ex.body); err != nil {
			return h.writeErrorAs(w, r, rt.Dialect, p, err)
		}
	case meter.Free:
		if err := h.checkFreeModel(r, rt, t); err != nil {
			return h.writeErrorAs(w, r, rt.Dialect, p, err)
		}
	default:
		return h.writeErrorAs(w, r, rt.Dialect, p, errNotServed)
	}

	access.model = adm.model
	req := h.limitRequest(p, t, id, sid, adm.model, adm.prompt+adm.output, adm.cost)
	req.Free = !adm.metered
	start := time.Now()
	res, dec, err := h.store.Reserve(r.Context(), h.now(), req)
	h.admission.Observe(time.Since(start).Seconds())
	if err != nil {
		return h.writeErrorAs(w, r, rt.Dialect, p, storeFailed("reserve", err))
	}
	if dec.Revoked {
		return h.writeErrorAs(w, r, rt.Dialect, p, errRevoked)
	}
	mw := &ex.mw // the headers' values live in ex, with the writer that sets them
	mw.rl = rateLimitHeaders(t, dec)
	if !dec.Allowed {
		mw.rl.apply(w.Header())
		if p.alerts != nil {
			h.alertRefused(p, t, req, dec, h.now())
		}
		return h.writeErrorAs(w, r, rt.Dialect, p, refusal(dec))
	}

	p.metrics.ok.Inc()
	p.metrics.inFlight.Inc()
	// The provider must answer uncompressed so the usage can be read; Caddy's encode directive
	// can still compress for the client.
	delete(r.Header, "Accept-Encoding")
	mw.ResponseWriterWrapper = caddyhttp.ResponseWriterWrapper{ResponseWriter: w}
	mw.route, mw.origin = rt, h.cors.origin(r, p)
	defer func() {
		// Settle even when next panics: the concurrency slot must always be freed.
		// The request's context may be cancelled by now: Settle goes on regardless.
		used := h.usageOf(r, p, mw, adm)
		spend, err := h.store.Settle(r.Context(), h.now(), res, used)
		p.metrics.settled(used, spend, err)
		access.inputTokens, access.outputTokens, access.costUSD = used.InputTokens, used.OutputTokens, used.Cost.Dollars()
		if err != nil {
			storeFailed("settle", err)
			h.logger.Error("settling a request failed", zap.String("project", p.id), zap.String("user", id.UserID), zap.Error(err))
		} else if p.alerts != nil {
			h.alertSettled(p, t, id.UserID, res.At, spend)
		}
	}()
	err = next.ServeHTTP(mw, r)
	if err != nil && mw.status == 0 {
		// No response yet: Caddy writes the error (a 502 from reverse_proxy), with the limits.
		mw.rl.apply(w.Header())
	}
	return err
}

// exchange is what a request through the gateway needs allocated: its access-log fields and
// the writer that meters its response.
type exchange struct {
	access accessFields
	mw     meterWriter
	body   bodyReader
	ids    identityValues
}

// bodyReader is the body passed on after the gateway read it.
type bodyReader struct{ bytes.Reader }

func (*bodyReader) Close() error { return nil }

// prepareBody reads a model request's body, bounds its worst case and rewrites it so the
// provider honours that bound and reports its usage.
func (h *Handler) prepareBody(r *http.Request, rt meter.Route, p *project, t *tier, rb *bodyReader) (admission, error) {
	body, err := readRequestBody(r, h.MaxRequestBody)
	if err != nil {
		return admission{}, badRequest("invalid_request", "", "The request body could not be read.")
	}
	if int64(len(body)) > h.MaxRequestBody {
		return admission{}, &apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error",
			code: "request_too_large", message: "The request body is over " + strconv.FormatInt(h.MaxRequestBody, 10) + " bytes."}
	}
	info, err := rt.Dialect.Inspect(rt, body)
	if err != nil {
		return admission{}, requestError(err)
	}
	if len(info.Model) > maxModelName {
		return admission{}, badRequest("invalid_request", "model", "model must be at most 256 bytes.")
	}
	if !t.allowsModel(info.Model) {
		return admission{}, modelNotAllowed(info.Model, t)
	}
	adm := admission{metered: true, model: info.Model, prompt: int64(len(body))}
	if info.IndirectInput {
		// Stored context or content by reference: the body's size bounds nothing.
		adm.prompt = max(adm.prompt, t.maxInput)
	}
	var setCap int64
	switch {
	case info.NoOutput:
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
	out, err := rt.Dialect.Rewrite(body, info, setCap, info.Stream && p.streamUsage)
	if err != nil {
		return admission{}, requestError(err)
	}
	rb.Reset(out)
	r.Body = rb
	r.ContentLength = int64(len(out))
	if v := r.Header["Content-Length"]; len(v) == 1 {
		// In place: the header map is often full (8 entries), and any assignment to a full
		// small map grows it, even to a key it has.
		v[0] = strconv.Itoa(len(out))
	} else {
		r.Header.Set("Content-Length", strconv.Itoa(len(out)))
	}
	return adm, nil
}

// readRequestBody reads r's body, up to limit+1 bytes so an oversize body shows, in one allocation
// when the client declared its length.
func readRequestBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength < 0 || r.ContentLength > limit {
		return io.ReadAll(io.LimitReader(r.Body, limit+1))
	}
	// One byte over the declared length, so reading stops at EOF rather than a full buffer.
	buf := make([]byte, 0, r.ContentLength+1)
	for {
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return buf, err
		case len(buf) == cap(buf):
			// Longer than declared (not over HTTP/1, whose server stops at Content-Length).
			rest, err := io.ReadAll(io.LimitReader(r.Body, limit+1-int64(len(buf))))
			return append(buf, rest...), err
		}
	}
}

// checkFreeModel holds a free request that names a model (a token count) to the tier's
// allowlist too: the path's model, or the body's.
func (h *Handler) checkFreeModel(r *http.Request, rt meter.Route, t *tier) error {
	if t.models == nil {
		return nil
	}
	model := rt.Model
	if model == "" && r.Method == http.MethodPost {
		body, err := io.ReadAll(io.LimitReader(r.Body, h.MaxRequestBody+1))
		if err != nil || int64(len(body)) > h.MaxRequestBody {
			return badRequest("invalid_request", "", "The request body could not be read, or is over "+strconv.FormatInt(h.MaxRequestBody, 10)+" bytes.")
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		info, err := rt.Dialect.Inspect(rt, body)
		if err != nil {
			return requestError(err)
		}
		model = info.Model
	}
	if model == "" && r.Method != http.MethodPost {
		return nil // a listing names no model
	}
	if !t.allowsModel(model) {
		return modelNotAllowed(model, t)
	}
	return nil
}

// modelNotAllowed refuses a model outside the tier's allowlist.
func modelNotAllowed(model string, t *tier) *apiError {
	msg := "The model " + strconv.Quote(model) + " is not allowed for tier " + t.name + "."
	if model == "" {
		msg = "The request names no model, and tier " + t.name + " allows only some."
	}
	return &apiError{status: http.StatusForbidden, typ: "invalid_request_error", code: "model_not_allowed", message: msg}
}

// logOnce logs msg once per key, for at most maxLoggedOnce keys: the keys come from requests.
func (h *Handler) logOnce(key, msg string, fields ...zap.Field) {
	if loggedOnceCount.Load() >= maxLoggedOnce {
		return
	}
	if _, seen := loggedOnce.LoadOrStore(key, struct{}{}); !seen {
		loggedOnceCount.Add(1)
		h.logger.Warn(msg, fields...)
	}
}

const maxLoggedOnce = 10_000

var (
	loggedOnce      sync.Map
	loggedOnceCount atomic.Int64
)

func (h *Handler) logUnpriced(p *project, model string) {
	h.logOnce("price\x00"+p.id+"\x00"+model, "model has no price; it costs 0", zap.String("project", p.id), zap.String("model", model))
}

// usageOf is what a finished request is charged: the usage the provider reported; nothing for a
// provider error; the reservation when the response was cut off or carried no usage.
func (h *Handler) usageOf(r *http.Request, p *project, mw *meterWriter, adm admission) limiter.Usage {
	if !adm.metered {
		return limiter.Usage{}
	}
	if u, ok := mw.usage(); ok {
		// The provider's name for the model first (a dated snapshot of a priced model), then the
		// requested model's price, and only then the "*" default.
		pr, priced := p.modelPrice(u.Model)
		if !priced {
			pr, priced = p.priceOf(adm.model)
		}
		var cost limiter.Nanos
		if priced {
			cost = pr.usageCost(u)
		}
		return limiter.Usage{InputTokens: u.InputTokens, CachedInputTokens: u.CachedInputTokens, OutputTokens: u.OutputTokens, Cost: cost}
	}
	switch {
	case r.Context().Err() != nil:
		// The client left (before the headers, or mid-stream): the provider still did the work.
	case mw.status >= 400:
		return limiter.Usage{} // a provider error with no usage
	case mw.status == 0:
		return limiter.Usage{} // no answer came: the provider could not be reached
	}
	// Cut off before its usage record: charged its reservation.
	return limiter.Usage{InputTokens: adm.prompt, OutputTokens: adm.output, Cost: adm.cost}
}

func (h *Handler) limitRequest(p *project, t *tier, id *verifier.Identity, sid, model string, tokens int64, cost limiter.Nanos) limiter.Request {
	iat := id.IssuedAt
	if iat.IsZero() {
		// A token without iat cannot show it was issued after a revocation.
		iat = time.Unix(1, 0)
	}
	return limiter.Request{
		Project: p.id, User: id.UserID, Org: id.OrgID, Session: sid, Tier: t.name, Model: model,
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
		if dec.Never {
			// Nothing is spent: this request alone could cost more than the whole quota.
			e.message = "This request's worst case is over the " + name + " quota by itself, whatever has been spent; " +
				"ask for fewer output tokens (max_tokens) or send a smaller prompt."
		}
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
