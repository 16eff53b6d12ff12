package limiter

import (
	"encoding/binary"
	"errors"
	"strings"
)

// The file's keys and values are binary: written every second for every active user, they
// must be cheap to make. Strings in keys are length-prefixed, so that no ID (user IDs come from
// tokens and can hold any byte) can make two keys collide or a key parse wrongly; the last
// string of a key runs to its end. Values start with a format byte so they can change later.

const valueFormat = 1

var errCorrupt = errors.New("malformed record")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// readString reads a length-prefixed string from b and returns the rest.
func readString(b []byte) (string, []byte, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return "", nil, errCorrupt
	}
	return string(b[w : w+int(n)]), b[w+int(n):], nil
}

// appendUserKey encodes a user's key in the users bucket.
func appendUserKey(b []byte, k userKey) []byte { return append(appendString(b, k.project), k.user...) }

func parseUserKey(b []byte) (userKey, error) {
	project, rest, err := readString(b)
	return userKey{project, string(rest)}, err
}

// appendUser encodes the counters of u that outlive a restart: its periods and the live buckets
// of its window. Holds and concurrency do not: their requests die with the process (and stay
// charged their reservation, as a request cut off is).
func appendUser(b []byte, u *userState) []byte {
	b = append(b, valueFormat)
	for _, v := range [...]int64{u.latest, int64(u.day), u.dayTokens, int64(u.dayCost), int64(u.month), int64(u.monthCost)} {
		b = binary.AppendVarint(b, v)
	}
	w, gone := u.win(), expiredBy(u.latest)
	if w == nil {
		return binary.AppendUvarint(b, 0)
	}
	n := 0
	for i := range w.secs {
		if w.secs[i] > gone && (w.reqs[i] != 0 || w.tokens[i] != 0) {
			n++
		}
	}
	b = binary.AppendUvarint(b, uint64(n))
	for i := range w.secs {
		if w.secs[i] > gone && (w.reqs[i] != 0 || w.tokens[i] != 0) {
			b = binary.AppendVarint(b, w.secs[i])
			b = binary.AppendVarint(b, w.reqs[i])
			b = binary.AppendVarint(b, w.tokens[i])
		}
	}
	return b
}

func parseUser(b []byte) (*userState, error) {
	r := reader{b: b}
	if r.byte() != valueFormat {
		return nil, errCorrupt
	}
	latest, day, dayTokens, dayCost, month, monthCost := r.varint(), r.varint(), r.varint(), r.varint(), r.varint(), r.varint()
	if day != int64(int32(day)) || month != int64(int32(month)) {
		return nil, errCorrupt
	}
	u := &userState{latest: latest, day: int32(day), dayTokens: dayTokens, dayCost: Nanos(dayCost),
		month: int32(month), monthCost: Nanos(monthCost)}
	n := r.uvarint()
	if n > windowSlots {
		return nil, errCorrupt
	}
	if n > 0 {
		w := getWindow()
		u.active().win = w
		for range n {
			sec, reqs, tokens := r.varint(), r.varint(), r.varint()
			i := slotOf(sec)
			w.secs[i], w.reqs[i], w.tokens[i] = sec, reqs, tokens
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return u, nil
}

func appendProject(b []byte, month int64, cost Nanos) []byte {
	b = append(b, valueFormat)
	b = binary.AppendVarint(b, month)
	return binary.AppendVarint(b, int64(cost))
}

func parseProject(b []byte) (*projectState, error) {
	r := reader{b: b}
	if r.byte() != valueFormat {
		return nil, errCorrupt
	}
	p := &projectState{month: r.varint(), monthCost: Nanos(r.varint())}
	return p, r.err
}

// appendUsageKey encodes k within its project's bucket: the day first, as 8 big-endian bytes
// with the sign flipped, so a cursor walks days in order and a range of days is one seek.
// A usage key is the day, then orgMarker and the org, then the user, session, tier and model.
// Keys written before orgs were kept have the user right after the day: its length is never 0
// (a user id is never empty), so orgMarker tells them apart, and their org is the user's part
// before its first ':'.
const orgMarker = 0

func appendUsageKey(b []byte, k *usageKey) []byte {
	b = appendDay(b, k.day)
	b = append(b, orgMarker)
	b = appendString(b, k.org)
	b = appendString(b, k.user)
	b = appendString(b, k.session)
	b = appendString(b, k.tier)
	return append(b, k.model...)
}

func appendDay(b []byte, day int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(day)^1<<63)
}

func parseDay(b []byte) (int64, bool) {
	if len(b) < 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b) ^ 1<<63), true
}

func parseUsageKey(project string, b []byte) (usageKey, error) {
	k := usageKey{project: project}
	var ok bool
	if k.day, ok = parseDay(b); !ok {
		return k, errCorrupt
	}
	rest := b[8:]
	var err error
	withOrg := len(rest) > 0 && rest[0] == orgMarker
	if withOrg {
		if k.org, rest, err = readString(rest[1:]); err != nil {
			return k, err
		}
	}
	for _, s := range []*string{&k.user, &k.session, &k.tier} {
		if *s, rest, err = readString(rest); err != nil {
			return k, err
		}
	}
	if !withOrg {
		k.org = legacyOrg(k.user)
	}
	k.model = string(rest)
	return k, nil
}

// legacyOrg is the org of usage recorded before orgs were kept: the user's part before its
// first ':' ("" when it has none).
func legacyOrg(user string) string {
	if org, _, ok := strings.Cut(user, ":"); ok {
		return org
	}
	return ""
}

// usageFormat is the format byte of usage values that hold cached input tokens; values of
// valueFormat, written before there were any, read as none cached.
const usageFormat = 2

func appendUsage(b []byte, a usageAgg) []byte {
	b = append(b, usageFormat)
	for _, v := range [...]int64{a.Requests, a.InputTokens, a.OutputTokens, int64(a.Cost), a.CachedInputTokens} {
		b = binary.AppendVarint(b, v)
	}
	return b
}

func parseUsage(b []byte) (usageAgg, error) {
	r := reader{b: b}
	format := r.byte()
	if format != valueFormat && format != usageFormat {
		return usageAgg{}, errCorrupt
	}
	a := usageAgg{Requests: r.varint(), InputTokens: r.varint(), OutputTokens: r.varint(), Cost: Nanos(r.varint())}
	if format == usageFormat {
		a.CachedInputTokens = r.varint()
	}
	return a, r.err
}

// appendRevocationKey encodes a revocation's key: project, kind, id.
func appendRevocationKey(b []byte, k revKey) []byte {
	return append(appendString(appendString(b, k.project), k.kind), k.id...)
}

func parseRevocationKey(b []byte) (revKey, error) {
	var k revKey
	var err error
	if k.project, b, err = readString(b); err != nil {
		return k, err
	}
	if k.kind, b, err = readString(b); err != nil {
		return k, err
	}
	k.id = string(b)
	return k, nil
}

// reader reads varints from b, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.err = errCorrupt
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}
