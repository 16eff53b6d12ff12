package behest

import (
	"encoding/csv"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/behest/caddy-behest/limiter"
)

var usageNow = time.Date(2026, 12, 5, 15, 0, 0, 0, time.UTC)

func TestParseUsageQuery(t *testing.T) {
	for _, tc := range []struct {
		query   string
		groupBy []string
		csv     bool
		from    string
		to      string
		param   string // "": valid
	}{
		{"", []string{"user"}, false, "2026-12-01", "2026-12-05", ""},
		{"group_by=day,model", []string{"day", "model"}, false, "2026-12-01", "2026-12-05", ""},
		{"group_by=org,%20user&format=csv&from=2026-11-01&to=2026-11-30", []string{"org", "user"}, true, "2026-11-01", "2026-11-30", ""},
		{"group_by=day,day", nil, false, "", "", "group_by"},
		{"group_by=day,model,user", nil, false, "", "", "group_by"},
		{"group_by=week", nil, false, "", "", "group_by"},
		{"group_by=day,", nil, false, "", "", "group_by"},
		{"format=xml", nil, false, "", "", "format"},
		{"from=2026-13-01", nil, false, "", "", "from"},
		{"from=2026-12-05&to=2026-12-04", nil, false, "", "", "to"},
	} {
		q, err := parseUsageQuery(httptest.NewRequest("GET", "/v1/usage?"+tc.query, nil), "p", usageNow)
		if tc.param != "" {
			if ae, ok := err.(*apiError); !ok || ae.param != tc.param || ae.status != 400 {
				t.Errorf("%q: err = %v, want a 400 naming %s", tc.query, err, tc.param)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(q.GroupBy, tc.groupBy) || q.csv != tc.csv ||
			q.From.Format(time.DateOnly) != tc.from || q.To.Format(time.DateOnly) != tc.to {
			t.Errorf("%q: %+v, %v", tc.query, q, err)
		}
	}
}

var usageRows = []limiter.UsageRow{
	{Group: []string{"2026-12-01", "gpt-4o-mini"}, Requests: 3, InputTokens: 300, CachedInputTokens: 100, OutputTokens: 30, Cost: limiter.USD(0.0011)},
	{Group: []string{"2026-12-02", "claude-haiku-4-5"}, Requests: 1, InputTokens: 10, OutputTokens: 5, Cost: 1},
}

func TestUsageJSONTwoDimensions(t *testing.T) {
	p := &project{id: "p_456", tenant: "t_123", costPerMonth: limiter.USD(500)}
	q := usageQuery{UsageQuery: limiter.UsageQuery{GroupBy: []string{"day", "model"}, From: usageNow, To: usageNow}}
	var got struct {
		Object  string `json:"object"`
		GroupBy string `json:"group_by"`
		Project struct {
			ID     string   `json:"id"`
			Tenant string   `json:"tenant_id"`
			Budget *float64 `json:"cost_per_month_usd"`
		} `json:"project"`
		Data []map[string]any `json:"data"`
	}
	body := usageJSON(p, q, usageRows)
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if got.Object != "list" || got.GroupBy != "day,model" || got.Project.ID != "p_456" || got.Project.Budget == nil || *got.Project.Budget != 500 {
		t.Fatalf("envelope: %s", body)
	}
	want := map[string]any{"day": "2026-12-01", "model": "gpt-4o-mini", "requests": 3.0, "input_tokens": 300.0,
		"cached_input_tokens": 100.0, "output_tokens": 30.0, "cost_usd": 0.0011}
	if len(got.Data) != 2 || !reflect.DeepEqual(got.Data[0], want) {
		t.Fatalf("row 0 = %v, want %v (no key with two dimensions)", got.Data, want)
	}

	// One dimension: the row has key too; no budget is null; no rows is an empty list.
	q.GroupBy = []string{"user"}
	body = usageJSON(&project{id: "p"}, q, []limiter.UsageRow{{Group: []string{"org_9:u"}, Requests: 1}})
	var one struct {
		Project struct {
			Budget *float64 `json:"cost_per_month_usd"`
		} `json:"project"`
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal(body, &one); err != nil || one.Project.Budget != nil || one.Data[0]["key"] != "org_9:u" || one.Data[0]["user"] != "org_9:u" {
		t.Fatalf("one dimension: %s", body)
	}
	if body := usageJSON(&project{id: "p"}, q, nil); !strings.Contains(string(body), `"data":[]`) || !json.Valid(body) {
		t.Fatalf("an empty range: %s", body)
	}
}

func TestUsageCSVEscapesOddIds(t *testing.T) {
	odd := []string{`org,9:"quoted"`, "line\nbreak", "=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\ttab", "plain é"}
	var rows []limiter.UsageRow
	for _, id := range odd {
		rows = append(rows, limiter.UsageRow{Group: []string{id}, Requests: 1, InputTokens: 2, CachedInputTokens: 1, OutputTokens: 3, Cost: limiter.USD(0.5)})
	}
	rec := httptest.NewRecorder()
	q := usageQuery{UsageQuery: limiter.UsageQuery{GroupBy: []string{"user"}, From: usageNow, To: usageNow}, csv: true}
	if err := writeUsageCSV(rec, httptest.NewRequest("GET", "/v1/usage", nil), &project{id: "p/../x"}, q, rows); err != nil {
		t.Fatal(err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := rec.Header().Get("Content-Disposition"); cd != `attachment; filename="behest-usage-p____x-2026-12-05-2026-12-05.csv"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	records, err := csv.NewReader(strings.NewReader(rec.Body.String())).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, rec.Body)
	}
	if want := []string{"user", "requests", "input_tokens", "cached_input_tokens", "output_tokens", "cost_usd"}; !reflect.DeepEqual(records[0], want) {
		t.Errorf("header %q, want %q", records[0], want)
	}
	wantIDs := []string{`org,9:"quoted"`, "line\nbreak", "'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)", "'\ttab", "plain é"}
	for i, id := range wantIDs {
		if got := records[i+1]; got[0] != id || got[1] != "1" || got[5] != "0.5" {
			t.Errorf("row %d = %q, want the id %q", i, got, id)
		}
	}
	// An empty range is the header alone.
	rec = httptest.NewRecorder()
	_ = writeUsageCSV(rec, httptest.NewRequest("GET", "/v1/usage", nil), &project{id: "p"}, q, nil)
	if got := rec.Body.String(); got != "user,requests,input_tokens,cached_input_tokens,output_tokens,cost_usd\n" {
		t.Errorf("empty CSV %q", got)
	}
}
