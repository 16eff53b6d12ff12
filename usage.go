package behest

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/behest/caddy-behest/limiter"
)

// usageQuery is a usage request parsed: the store's query and the answer's format.
type usageQuery struct {
	limiter.UsageQuery
	csv bool
}

// serveUsage reports a project's usage, grouped by one or two dimensions, as JSON or CSV.
func (h *Handler) serveUsage(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return h.writeError(w, r, nil, methodNotAllowed(w, "GET"))
	}
	p, err := h.projectOfAPIKey(r)
	if err != nil {
		return h.writeError(w, r, nil, err)
	}
	q, err := parseUsageQuery(r, p.id, h.now())
	if err != nil {
		return h.writeError(w, r, p, err)
	}
	rows, err := h.store.Usage(r.Context(), q.UsageQuery)
	if err != nil {
		return h.writeError(w, r, p, storeFailed("usage", err))
	}
	w.Header().Set("Cache-Control", "no-store")
	h.cors.allow(w, r, p)
	if q.csv {
		return writeUsageCSV(w, r, p, q, rows)
	}
	writeBody(w, http.StatusOK, usageJSON(p, q, rows))
	return nil
}

// usageColumns are a row's figures, after its dimensions, in the JSON and the CSV alike.
var usageColumns = [...]string{"requests", "input_tokens", "cached_input_tokens", "output_tokens", "cost_usd"}

func (row *usageRowValues) figures(ur *limiter.UsageRow) {
	row[0] = strconv.FormatInt(ur.Requests, 10)
	row[1] = strconv.FormatInt(ur.InputTokens, 10)
	row[2] = strconv.FormatInt(ur.CachedInputTokens, 10)
	row[3] = strconv.FormatInt(ur.OutputTokens, 10)
	row[4] = strconv.FormatFloat(ur.Cost.Dollars(), 'f', -1, 64)
}

type usageRowValues [len(usageColumns)]string

// usageJSON is {"object":"list","group_by","from","to","project":{…},"data":[…]}: each row
// has a field per dimension by its name (and "key" with one dimension), then its figures.
func usageJSON(p *project, q usageQuery, rows []limiter.UsageRow) []byte {
	var b bytes.Buffer
	b.WriteString(`{"object":"list","group_by":`)
	writeJSONValue(&b, strings.Join(q.GroupBy, ","))
	b.WriteString(`,"from":"` + q.From.Format(time.DateOnly) + `","to":"` + q.To.Format(time.DateOnly) + `","project":{"id":`)
	writeJSONValue(&b, p.id)
	b.WriteString(`,"tenant_id":`)
	writeJSONValue(&b, p.tenant)
	b.WriteString(`,"cost_per_month_usd":`)
	if p.costPerMonth > 0 {
		b.WriteString(strconv.FormatFloat(p.costPerMonth.Dollars(), 'f', -1, 64))
	} else {
		b.WriteString("null")
	}
	b.WriteString(`},"data":[`)
	var figures usageRowValues
	for i := range rows {
		ur := &rows[i]
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		if len(q.GroupBy) == 1 {
			b.WriteString(`"key":`)
			writeJSONValue(&b, ur.Group[0])
			b.WriteByte(',')
		}
		for d, name := range q.GroupBy {
			writeJSONValue(&b, name)
			b.WriteByte(':')
			writeJSONValue(&b, ur.Group[d])
			b.WriteByte(',')
		}
		figures.figures(ur)
		for c, name := range usageColumns {
			if c > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"` + name + `":` + figures[c])
		}
		b.WriteByte('}')
	}
	b.WriteString("]}")
	return b.Bytes()
}

func writeJSONValue(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // a string always encodes
	b.Write(enc)
}

// writeUsageCSV answers text/csv: a header row of the dimensions and figures, then a row per
// group. Values that a spreadsheet would read as a formula (=, +, -, @, tab, CR first) get a
// leading apostrophe, so an export of user ids cannot run anything when opened.
func writeUsageCSV(w http.ResponseWriter, r *http.Request, p *project, q usageQuery, rows []limiter.UsageRow) error {
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	header := append(append([]string{}, q.GroupBy...), usageColumns[:]...)
	_ = cw.Write(header)
	record := make([]string, len(header))
	var figures usageRowValues
	for i := range rows {
		ur := &rows[i]
		for d := range q.GroupBy {
			record[d] = csvSafe(ur.Group[d])
		}
		figures.figures(ur)
		copy(record[len(q.GroupBy):], figures[:])
		_ = cw.Write(record)
	}
	cw.Flush()
	hdr := w.Header()
	hdr.Set("Content-Type", "text/csv; charset=utf-8")
	hdr.Set("Content-Disposition", `attachment; filename="behest-usage-`+csvFileName(p.id)+"-"+
		q.From.Format(time.DateOnly)+"-"+q.To.Format(time.DateOnly)+`.csv"`)
	hdr.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.Bytes())
	}
	return nil
}

func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// csvFileName keeps the characters of a project id that are safe in a quoted file name.
func csvFileName(id string) string {
	return strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			return c
		}
		return '_'
	}, id)
}

// parseUsageQuery reads group_by (one or two dimensions, default user), from and to (UTC days,
// default this month up to today), user_id and format (json or csv).
func parseUsageQuery(r *http.Request, projectID string, now time.Time) (usageQuery, error) {
	v := r.URL.Query()
	q := usageQuery{UsageQuery: limiter.UsageQuery{Project: projectID, User: v.Get("user_id")}}
	switch v.Get("format") {
	case "", "json":
	case "csv":
		q.csv = true
	default:
		return q, badRequest("invalid_request", "format", "format must be json or csv.")
	}
	groupBy := v.Get("group_by")
	if groupBy == "" {
		groupBy = limiter.GroupByUser
	}
	for _, d := range strings.Split(groupBy, ",") {
		d = strings.TrimSpace(d)
		if !slices.Contains(limiter.GroupByDimensions, d) {
			return q, badRequest("invalid_request", "group_by", "group_by takes one or two of user, org, session, tier, model, day, joined by a comma (day,model).")
		}
		if slices.Contains(q.GroupBy, d) {
			return q, badRequest("invalid_request", "group_by", "group_by names "+d+" twice.")
		}
		q.GroupBy = append(q.GroupBy, d)
	}
	if len(q.GroupBy) > 2 {
		return q, badRequest("invalid_request", "group_by", "group_by takes at most two dimensions, like day,model.")
	}
	today := now.UTC().Truncate(24 * time.Hour)
	q.From, q.To = time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC), today
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if s := v.Get(f.name); s != "" {
			d, err := time.Parse(time.DateOnly, s)
			if err != nil {
				return q, badRequest("invalid_request", f.name, f.name+" must be a date like 2026-01-31.")
			}
			*f.dst = d
		}
	}
	if q.To.Before(q.From) {
		return q, badRequest("invalid_request", "to", "to must not be before from.")
	}
	return q, nil
}
