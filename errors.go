package behest

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/behest/caddy-behest/limiter"
	"github.com/behest/caddy-behest/meter"
	"github.com/behest/caddy-behest/verifier"
)

// apiError is an OpenAI-shaped error response. The status decides which error class the OpenAI
// SDKs raise; code and message tell a developer what to do.
type apiError struct {
	status  int
	typ     string
	code    string
	param   string
	message string
	// retryAfter, for 429s: sets Retry-After and retry-after-ms.
	retryAfter time.Duration
	// noRetry sets x-should-retry: false, for limits that waiting a minute cannot help.
	noRetry bool
}

func (e *apiError) Error() string { return e.message }

func badRequest(code, param, message string) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", code: code, param: param, message: message}
}

func unauthorized(message string) *apiError {
	return &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error", code: "invalid_api_key", message: message}
}

var errRevoked = errors.New("token has been revoked")

// toAPIError maps the errors of the plain packages to the contract's status codes, in one place.
func toAPIError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	// First: an attestation token's failures (expired, …) are the attestation's, not the user's token's.
	case errors.Is(err, verifier.ErrAttestation):
		return &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error", code: "attestation_required",
			message: "This tier must prove the request comes from the app with a valid attestation token: " + err.Error() + "."}
	case errors.Is(err, errNoToken):
		return unauthorized("No API key provided: send the token as 'Authorization: Bearer <token>' (or in x-api-key or x-goog-api-key, as the Anthropic and Gemini SDKs do).")
	case errors.Is(err, verifier.ErrExpired):
		return unauthorized("The token has expired: get a new one from your backend.")
	case errors.Is(err, errRevoked):
		return unauthorized("The token has been revoked: get a new one from your backend.")
	case errors.Is(err, verifier.ErrIssuerUnavailable):
		return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "issuer_unavailable",
			message: "The token's issuer cannot be reached and no keys are cached for it; try again shortly."}
	case errors.Is(err, limiter.ErrUnavailable):
		return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "store_unavailable",
			message: "The gateway cannot check limits right now; try again shortly."}
	case errors.Is(err, verifier.ErrPermission):
		return &apiError{status: http.StatusForbidden, typ: "invalid_request_error", code: "permission_denied",
			message: "The token is valid but not for this project: " + err.Error() + "."}
	case errors.Is(err, verifier.ErrMalformed), errors.Is(err, verifier.ErrSignature),
		errors.Is(err, verifier.ErrNotYetValid), errors.Is(err, verifier.ErrMissingClaim),
		errors.Is(err, verifier.ErrAlgorithm), errors.Is(err, verifier.ErrUnknownKey),
		errors.Is(err, verifier.ErrUnknownIssuer), errors.Is(err, verifier.ErrAudience):
		return unauthorized("Invalid token: " + err.Error() + ".")
	}
	return &apiError{status: http.StatusInternalServerError, typ: "server_error", code: "internal_error",
		message: "The gateway failed to handle the request."}
}

// writeError answers a request to the gateway's own endpoints with err, in the OpenAI shape.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, p *project, err error) error {
	return h.writeErrorAs(w, r, meter.OpenAI, p, err)
}

// writeErrorAs answers with err as the contract's error in dialect d's shape: the status, code
// and headers are decided here, once, for every dialect. p is the caller's project when it is
// known (for CORS). It returns nil: the response is complete.
func (h *Handler) writeErrorAs(w http.ResponseWriter, r *http.Request, d meter.Dialect, p *project, err error) error {
	ae := toAPIError(err)
	if ae.status >= 500 {
		h.logger.Error("request failed", zap.String("path", r.URL.Path), zap.Int("status", ae.status), zap.Error(err))
	} else if ce := h.logger.Check(zap.DebugLevel, "request refused"); ce != nil {
		ce.Write(zap.String("path", r.URL.Path), zap.Int("status", ae.status), zap.String("code", ae.code), zap.Error(err))
	}
	pid := ""
	if p != nil {
		pid = p.id
	}
	metrics.requests.WithLabelValues(pid, ae.code).Inc()
	h.cors.allow(w, r, p)
	hdr := w.Header()
	if ae.status == http.StatusUnauthorized {
		hdr.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	if ae.retryAfter > 0 {
		secs := int64((ae.retryAfter + time.Second - 1) / time.Second)
		hdr.Set("Retry-After", strconv.FormatInt(secs, 10))
		hdr.Set("retry-after-ms", strconv.FormatInt(ae.retryAfter.Milliseconds(), 10))
	}
	if ae.noRetry {
		hdr.Set("x-should-retry", "false")
	}
	body := d.ErrorBody(meter.Error{Status: ae.status, Code: ae.code, Type: ae.typ, Param: ae.param, Message: ae.message})
	writeBody(w, ae.status, body)
	return nil
}

// writeBody answers with a JSON body and a trailing newline.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":{"message":"encoding failed","type":"server_error","param":null,"code":"internal_error"}}`)
	}
	writeBody(w, status, body)
}
