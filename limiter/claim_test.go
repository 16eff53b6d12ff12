package limiter

import (
	"context"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestClaimsSurviveRestart: claims are written with the next flush and read back on open; a
// claim whose end has passed is dropped (by the sweep, and at open).
func TestClaimsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	e, path := openForFlush(t, EmbeddedOptions{})
	held, gone := time.Now().Add(time.Hour), time.Now().Add(-time.Second)
	for _, c := range []struct {
		key   string
		until time.Time
	}{{"alert:a", held}, {"jti:1", gone}} {
		if first, err := e.Claim(ctx, "p", c.key, c.until); err != nil || !first {
			t.Fatalf("Claim(%s) = %v, %v", c.key, first, err)
		}
	}
	mustFlush(t, e)
	e.crash() // only what a flush wrote survives
	again, err := OpenEmbedded(path, EmbeddedOptions{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if first, err := again.Claim(ctx, "p", "alert:a", held); err != nil || first {
		t.Errorf("a claim after a restart: first = %v, %v; want taken", first, err)
	}
	if first, err := again.Claim(ctx, "p", "jti:1", held); err != nil || !first {
		t.Errorf("an expired claim after a restart: first = %v, %v; want free", first, err)
	}

	// In memory, the sweep drops claims whose end the store's clock has passed.
	e2, _ := openForFlush(t, EmbeddedOptions{})
	now := time.Now()
	if _, err := e2.Claim(ctx, "p", "k", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	e2.observe(now.Add(2 * time.Minute).UnixNano())
	mustFlush(t, e2)
	if first, _ := e2.Claim(ctx, "p", "k", now.Add(time.Hour)); !first {
		t.Error("a claim past its end was not dropped by the sweep")
	}
}

// TestUsageFormatOne: usage written before cached input tokens were kept reads back with none.
func TestUsageFormatOne(t *testing.T) {
	old := []byte{valueFormat, 2, 4, 6, 8} // varints of 1, 2, 3, 4
	a, err := parseUsage(old)
	if err != nil || a != (usageAgg{Requests: 1, InputTokens: 2, OutputTokens: 3, Cost: 4}) {
		t.Fatalf("parseUsage(format 1) = %+v, %v", a, err)
	}
}

// TestUsageKeysWithoutOrg: usage recorded before orgs were kept (no org in its key) reads back
// with the org its user id names, beside new records that carry their own.
func TestUsageKeysWithoutOrg(t *testing.T) {
	ctx := context.Background()
	e, path := openForFlush(t, EmbeddedOptions{})
	day := dayOf(testBase)
	old := appendDay(nil, day)
	for _, s := range []string{"org_9:u1", "sess", "free"} {
		old = appendString(old, s)
	}
	old = append(old, "gpt-4o"...)
	if err := e.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketUsage).CreateBucketIfNotExists([]byte("p"))
		if err != nil {
			return err
		}
		return b.Put(old, appendUsage(nil, usageAgg{Requests: 2, InputTokens: 20}))
	}); err != nil {
		t.Fatal(err)
	}
	res, _, _ := e.Reserve(ctx, testBase, Request{Project: "p", User: "org_9:u1", Org: "acme", Session: "sess", Tier: "free", Model: "gpt-4o"})
	if _, err := e.Settle(ctx, testBase, res, Usage{InputTokens: 5}); err != nil {
		t.Fatal(err)
	}
	mustFlush(t, e)
	rows, err := e.Usage(ctx, UsageQuery{Project: "p", GroupBy: []string{"org", "user"}})
	want := []UsageRow{{Group: []string{"acme", "org_9:u1"}, Requests: 1, InputTokens: 5}, {Group: []string{"org_9", "org_9:u1"}, Requests: 2, InputTokens: 20}}
	if err != nil || !reflect.DeepEqual(rows, want) {
		t.Fatalf("Usage = %+v, %v; want %+v", rows, err, want)
	}
	_ = path
}
