// Package redisstore is a limiter.Store kept in Redis, so that any number of gateway instances
// share one set of limits exactly.
//
// Every admission is one round trip: one Lua script checks the revocations and every limit of
// the request and reserves all of them atomically. Settling is one more round trip. Scripts are
// sent by EVALSHA and fall back to EVAL on NOSCRIPT, so a restarted Redis needs nothing from us.
// Time comes from the caller's now (the fake clock of tests works), except the concurrency
// leases, which are wall-clock so a crashed instance's slots come free.
//
// # Keys
//
// All keys start with Options.KeyPrefix (default "behest:") followed by the project in a hash
// tag, so that in Redis Cluster every key of a project is in one slot and one script can check
// a user's limits and the project's budget together. A very busy project therefore lives on one
// shard; projects spread over the cluster. KeyLayout lists the keys for documentation:
//
//	<prefix>{<project>}:u:<user>             hash   day and month counters: d, dt, dc, m, mc
//	<prefix>{<project>}:rpm:<user>           hash   unix second -> requests (rolling minute)
//	<prefix>{<project>}:tpm:<user>           hash   unix second -> tokens (rolling minute)
//	<prefix>{<project>}:inflight:<user>      zset   reservation id -> lease end (unix ms)
//	<prefix>{<project>}:project              hash   month and cost of the project budget: m, mc
//	<prefix>{<project>}:rev:<kind>:<id>      string unix nanoseconds of the latest revocation
//	<prefix>{<project>}:usage:<day>          hash   "user\0session\0tier\0model\0" + r|i|o|c -> sum
//	<prefix>{<project>}:usage-days           zset   days (since 1970-01-01 UTC) that have usage
//
// Every key gets a TTL when it is written, so idle users and old days leave Redis by themselves.
//
// # Failure policy
//
// When Redis cannot answer, every method returns an error wrapping limiter.ErrUnavailable
// (failing closed). With Options.FailOpen, Reserve instead admits against an in-memory store
// local to this instance (logged at most every 10 s and counted by FailOpenCount); such a
// reservation settles there. A settle that Redis could not take is retried in the background
// until Redis answers, so a blip does not hold concurrency slots until their lease ends.
//
// A request waits one read timeout at most for an answer (go-redis's own retries are off). A
// reserve whose answer was lost (a timeout, a connection that broke after sending it) may have
// run: it is asked again under the same id when the connection broke, and otherwise released
// by id in the background once Redis answers. One that could not connect never reached Redis
// and leaves nothing to undo, so an outage or a Sentinel failover queues only the settlements.
package redisstore
