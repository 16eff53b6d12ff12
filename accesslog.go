package behest

import (
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// accessFields is the "behest" object of Caddy's access-log entry of a request behest handled
// (the user is Caddy's own user_id field, from {http.auth.user.id}). It is filled in as the
// request goes and encoded when the entry is written, after the response. It never holds a
// token or a key.
type accessFields struct {
	project, tier, session, model string
	inputTokens, outputTokens     int64
	costUSD                       float64
}

func (f *accessFields) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("project_id", f.project)
	enc.AddString("tier", f.tier)
	enc.AddString("session_id", f.session)
	enc.AddString("model", f.model)
	enc.AddInt64("input_tokens", f.inputTokens)
	enc.AddInt64("output_tokens", f.outputTokens)
	enc.AddFloat64("cost_usd", f.costUSD)
	return nil
}

// logAccess puts f, the request's behest fields to fill in as it goes, on its access-log entry
// when Caddy logs it.
func logAccess(r *http.Request, f *accessFields) {
	if srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv != nil && srv.Logs == nil {
		return // this server writes no access log
	}
	if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
		extra.Set(zap.Object("behest", f))
	}
}
