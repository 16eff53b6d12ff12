package redisstore

import "github.com/redis/go-redis/v9"

// The scripts compute in Lua numbers (doubles), exact below 2^53: tokens and nanodollars stay
// far below that. Amounts that are written go to HINCRBY as the decimal strings Go sent, so
// Lua's number formatting never touches them. Times compared across calls (unix ns) are
// compared as decimal strings, as they do not fit a double.

// reserveScript checks the request's revocations and every limit, and reserves all of them
// when all have room.
//
// KEYS: 1 user, 2 rpm, 3 tpm, 4 inflight, 5 project, 6 user revocation, 7 session revocation.
// ARGV: 1 now (unix s), 2 day, 3 month, 4 requests/min, 5 tokens/min, 6 tokens/day,
// 7 cost/day, 8 cost/month, 9 project cost/month, 10 concurrent, 11 tokens, 12 cost,
// 13 iat (unix ns, "" for none), 14 check the user's and the session's revocation ("11",
// "10", ...), 15 reservation id,
// 16 wall clock (unix ms), 17 lease end (unix ms), 18 forget leases ended before (unix ms),
// 19 counter TTL (s), 20 window TTL (s), 21 inflight TTL (s), 22 the window second the
// request is added to (now rounded up, so it is held for at least 60 s of real time).
//
// Returns {refused, retry after (s), requests in window, requests reset (s), tokens in window,
// tokens reset (s)}; refused is 0 (admitted), -1 (revoked) or a refusedLimits index; or {-2}
// when the reservation was released before it ran (see releaseScript).
var reserveScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local stamp = tonumber(ARGV[22])

local iat = ARGV[13]
if iat ~= '' then
  local function covers(key)
    local at = redis.call('GET', key)
    return at and (#iat < #at or (#iat == #at and iat <= at))
  end
  if (ARGV[14]:sub(1, 1) == '1' and covers(KEYS[6])) or (ARGV[14]:sub(2, 2) == '1' and covers(KEYS[7])) then
    return {-1}
  end
end

-- current reports whether a stored period is now's, or a later one: a request stamped just
-- before a boundary (or by an instance whose clock is behind) must not start the old period
-- again, so it is charged to the later one.
local function current(stored, now)
  return stored and tonumber(stored) >= tonumber(now)
end

-- window reads a rolling minute and drops the seconds that left it. Seconds after now count:
-- they are another instance's whose clock is ahead, and must not let more through.
local function window(key)
  local flat = redis.call('HGETALL', key)
  local w, stale = {sum = 0, secs = {}, vals = {}}, {}
  for i = 1, #flat, 2 do
    local s = tonumber(flat[i])
    if s <= now - 60 then
      stale[#stale + 1] = flat[i]
    else
      local v = tonumber(flat[i + 1])
      w.sum = w.sum + v
      w.secs[#w.secs + 1] = s
      w.vals[s] = v
    end
  end
  if #stale > 0 then
    redis.call('HDEL', key, unpack(stale))
  end
  return w
end

-- waitFor is how long until w has room for n under limit: buckets leave oldest first.
local function waitFor(w, n, limit)
  local excess = w.sum + n - limit
  table.sort(w.secs)
  for _, s in ipairs(w.secs) do
    excess = excess - w.vals[s]
    if excess <= 0 then
      return s + 60 - now
    end
  end
  return 60
end

-- reset is how long until everything now in w has left it.
local function reset(w)
  local newest = -1
  for _, s in ipairs(w.secs) do
    if w.vals[s] > 0 and s > newest then
      newest = s
    end
  end
  if newest < 0 then
    return 0
  end
  return newest + 60 - now
end

local function add(w, key, n)
  redis.call('HINCRBY', key, ARGV[22], n)
  if not w.vals[stamp] then
    w.secs[#w.secs + 1] = stamp
    w.vals[stamp] = 0
  end
  w.vals[stamp] = w.vals[stamp] + tonumber(n)
  w.sum = w.sum + tonumber(n)
end

local rq, tk = window(KEYS[2]), window(KEYS[3])
local tokens, cost = tonumber(ARGV[11]), tonumber(ARGV[12])
` + readPeriodsLua + `
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[18])
-- The gateway gave up on this reservation and released it before the script ran (Redis was
-- paused with the call in its socket): reserve nothing.
if redis.call('ZREM', KEYS[4], 't' .. ARGV[15]) == 1 then
  return {-2}
end
local refused, retry = 0, 0
-- A reservation already held under this id means go-redis retried a call that had run:
-- answer as admitted without reserving twice.
if not redis.call('ZSCORE', KEYS[4], ARGV[15]) then
  local l = {}
  for i = 4, 10 do
    l[i] = tonumber(ARGV[i])
  end
  if l[10] > 0 and redis.call('ZCOUNT', KEYS[4], '(' .. ARGV[16], '+inf') + 1 > l[10] then
    refused, retry = 1, 1
  elseif l[4] > 0 and rq.sum + 1 > l[4] then
    refused, retry = 2, waitFor(rq, 1, l[4])
  elseif l[5] > 0 and tk.sum + tokens > l[5] then
    refused, retry = 3, waitFor(tk, tokens, l[5])
  elseif l[6] > 0 and dayTokens + tokens > l[6] then
    refused = 4
  elseif l[7] > 0 and dayCost + cost > l[7] then
    refused = 5
  elseif l[8] > 0 and monthCost + cost > l[8] then
    refused = 6
  elseif l[9] > 0 and projectCost + cost > l[9] then
    refused = 7
  end
  if refused == 0 then
    if not sameDay then
      redis.call('HSET', KEYS[1], 'd', ARGV[2], 'dt', 0, 'dc', 0)
    end
    if not sameMonth then
      redis.call('HSET', KEYS[1], 'm', ARGV[3], 'mc', 0)
    end
    redis.call('HINCRBY', KEYS[1], 'dt', ARGV[11])
    redis.call('HINCRBY', KEYS[1], 'dc', ARGV[12])
    redis.call('HINCRBY', KEYS[1], 'mc', ARGV[12])
    if not sameProjectMonth then
      redis.call('HSET', KEYS[5], 'm', ARGV[3], 'mc', 0)
    end
    redis.call('HINCRBY', KEYS[5], 'mc', ARGV[12])
    add(rq, KEYS[2], 1)
    add(tk, KEYS[3], ARGV[11])
    redis.call('ZADD', KEYS[4], ARGV[17], ARGV[15])
    redis.call('EXPIRE', KEYS[1], ARGV[19])
    redis.call('EXPIRE', KEYS[5], ARGV[19])
    redis.call('EXPIRE', KEYS[2], ARGV[20])
    redis.call('EXPIRE', KEYS[3], ARGV[20])
    redis.call('EXPIRE', KEYS[4], ARGV[21])
  end
end
return {refused, retry, rq.sum, reset(rq), tk.sum, reset(tk)}
`)

// settleScript replaces a reservation by what the request used, in the windows and periods
// that held it, frees its concurrency slot and adds the usage. It does nothing for a
// reservation no longer in flight (settled already), so settling twice is harmless.
//
// KEYS: 1 user, 2 tpm, 3 inflight, 4 project, 5 usage of the day, 6 usage days.
// ARGV: 1 reservation id, 2 reserved at (unix s), 3 its day, 4 its month, 5 token delta,
// 6 cost delta, 7 usage field prefix, 8 input tokens, 9 output tokens, 10 cost,
// 11 usage TTL (s), 12 forget usage days before, 13 cached input tokens, 14 "1" to record the
// usage ("0" for a free request).
//
// Returns {1, the user's day cost, month cost, the project's month cost} when settled (-1 for
// a period that is no longer the reservation's), {0} when there was nothing to settle.
var settleScript = redis.NewScript(`
if redis.call('ZREM', KEYS[3], ARGV[1]) == 0 then
  return {0}
end
local function adjust(key, field, delta)
  if redis.call('HINCRBY', key, field, delta) < 0 then
    redis.call('HSET', key, field, 0)
  end
end
if ARGV[5] ~= '0' and redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then
  adjust(KEYS[2], ARGV[2], ARGV[5])
end
local spend = {1, -1, -1, -1}
local u = redis.call('HMGET', KEYS[1], 'd', 'm')
if u[1] == ARGV[3] then
  adjust(KEYS[1], 'dt', ARGV[5])
  adjust(KEYS[1], 'dc', ARGV[6])
  spend[2] = tonumber(redis.call('HGET', KEYS[1], 'dc'))
end
if u[2] == ARGV[4] then
  adjust(KEYS[1], 'mc', ARGV[6])
  spend[3] = tonumber(redis.call('HGET', KEYS[1], 'mc'))
end
if redis.call('HGET', KEYS[4], 'm') == ARGV[4] then
  adjust(KEYS[4], 'mc', ARGV[6])
  spend[4] = tonumber(redis.call('HGET', KEYS[4], 'mc'))
end
if ARGV[14] == '0' then
  return spend
end
local f = ARGV[7]
redis.call('HINCRBY', KEYS[5], f .. 'r', 1)
redis.call('HINCRBY', KEYS[5], f .. 'i', ARGV[8])
redis.call('HINCRBY', KEYS[5], f .. 'o', ARGV[9])
redis.call('HINCRBY', KEYS[5], f .. 'c', ARGV[10])
if ARGV[13] ~= '0' then
  redis.call('HINCRBY', KEYS[5], f .. 'k', ARGV[13])
end
redis.call('EXPIRE', KEYS[5], ARGV[11])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', '(' .. ARGV[12])
redis.call('EXPIRE', KEYS[6], ARGV[11])
return spend
`)

// releaseScript undoes a reservation whose answer the gateway never got (the call timed out,
// or its context ended, and the script may have run anyway): the request was answered with an
// error and never went on, so its concurrency slot, its place in the rolling minutes and the
// tokens and cost it reserved are given back, and no usage is recorded. When the reservation is
// not there, either it never ran or it has not run yet: a tombstone (member "t<id>", scored so
// that it is never counted as in flight and is dropped after a while) makes the reserve script
// refuse it should it still arrive.
//
// KEYS: 1 user, 2 rpm, 3 tpm, 4 inflight, 5 project.
// ARGV: 1 reservation id, 2 its window second, 3 its day, 4 its month, 5 minus its tokens,
// 6 minus its cost, 7 tombstone score (unix ms), 8 inflight TTL (s): a tombstone may be the
// key's only member, and every key expires.
//
// Returns 1 when released, 0 when a tombstone was left.
var releaseScript = redis.NewScript(`
if redis.call('ZREM', KEYS[4], ARGV[1]) == 0 then
  redis.call('ZADD', KEYS[4], ARGV[7], 't' .. ARGV[1])
  redis.call('EXPIRE', KEYS[4], ARGV[8])
  return 0
end
local function give(key, field, delta)
  if redis.call('HEXISTS', key, field) == 1 and redis.call('HINCRBY', key, field, delta) < 0 then
    redis.call('HSET', key, field, 0)
  end
end
give(KEYS[2], ARGV[2], -1)
give(KEYS[3], ARGV[2], ARGV[5])
local u = redis.call('HMGET', KEYS[1], 'd', 'm')
if u[1] == ARGV[3] then
  give(KEYS[1], 'dt', ARGV[5])
  give(KEYS[1], 'dc', ARGV[6])
end
if u[2] == ARGV[4] then
  give(KEYS[1], 'mc', ARGV[6])
end
if redis.call('HGET', KEYS[5], 'm') == ARGV[4] then
  give(KEYS[5], 'mc', ARGV[6])
end
return 1
`)

// remainingScript reads what is used of a user's limits, writing nothing.
//
// KEYS: 1 user, 2 rpm, 3 tpm, 4 inflight, 5 project.
// ARGV: 1 now (unix s), 2 day, 3 month, 4 wall clock (unix ms).
//
// Returns {requests in window, tokens in window, day tokens, day cost, month cost,
// requests in flight, project month cost}.
var remainingScript = redis.NewScript(`
local now = tonumber(ARGV[1])
-- current reports whether a stored period is now's, or a later one: a request stamped just
-- before a boundary (or by an instance whose clock is behind) must not start the old period
-- again, so it is charged to the later one.
local function current(stored, now)
  return stored and tonumber(stored) >= tonumber(now)
end
local function sum(key)
  local flat, total = redis.call('HGETALL', key), 0
  for i = 1, #flat, 2 do
    local s = tonumber(flat[i])
    if s > now - 60 then
      total = total + tonumber(flat[i + 1])
    end
  end
  return total
end
` + readPeriodsLua + `local inflight = redis.call('ZCOUNT', KEYS[4], '(' .. ARGV[4], '+inf')
return {sum(KEYS[2]), sum(KEYS[3]), dayTokens, dayCost, monthCost, inflight, projectCost}
`)

// revokeScript records a revocation unless a later one is already kept.
//
// KEYS: 1 revocation. ARGV: 1 revoked at (unix ns), 2 TTL (ms).
var revokeScript = redis.NewScript(`
local cur, at = redis.call('GET', KEYS[1]), ARGV[1]
if not cur or #at > #cur or (#at == #cur and at > cur) then
  redis.call('SET', KEYS[1], at, 'PX', ARGV[2])
end
return 1
`)

// readPeriodsLua reads the user's day and month counters and the project's month spend, as
// reserve and remaining both need them; a stored period older than the request's counts zero.
const readPeriodsLua = `local u = redis.call('HMGET', KEYS[1], 'd', 'dt', 'dc', 'm', 'mc')
local p = redis.call('HMGET', KEYS[5], 'm', 'mc')
local sameDay, sameMonth, sameProjectMonth = current(u[1], ARGV[2]), current(u[4], ARGV[3]), current(p[1], ARGV[3])
local dayTokens, dayCost, monthCost, projectCost = 0, 0, 0, 0
if sameDay then
  dayTokens, dayCost = tonumber(u[2]) or 0, tonumber(u[3]) or 0
end
if sameMonth then
  monthCost = tonumber(u[5]) or 0
end
if sameProjectMonth then
  projectCost = tonumber(p[2]) or 0
end
`
