"""Login throttling: failed logins counted in Redis per account and per client address, in fixed windows.

A login first reserves an attempt on both counters, atomically with the check (a Lua script), so that concurrent
guesses cannot all pass the check while the first ones are still being verified; a success then clears the
account's counter and returns the address's reservation, so that only failures are counted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass
from typing import Literal, cast

import redis

from suuupra.settings import Settings

# KEYS: the counters; ARGV: their limits in the same order, then the window in milliseconds. Returns {0, 0} when the
# attempt is allowed (and counted), else {milliseconds to wait, the 1-based index of the counter that waits longest}.
_RESERVE = """
local wait, which = 0, 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i]) then
    local left = redis.call('PTTL', key)
    if left > wait then wait, which = left, i end
  end
end
if wait > 0 then return {wait, which} end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, ARGV[#KEYS + 1]) end
end
return {0, 0}
"""

# KEYS[1]: the account's counter, cleared; KEYS[2]: the address's, given its reservation back unless its window has
# ended meanwhile (a DECR would then leave a counter at -1 that never expires).
_SUCCEEDED = """
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DECR', KEYS[2]) end
return 0
"""

Counter = Literal["account", "address"]


@dataclass(frozen=True)
class Refusal:
    counter: Counter
    retry_after_s: int
    until: dt.datetime

    @property
    def message(self) -> str:
        whose = "for this account" if self.counter == "account" else "from this address"
        return (
            f"too many failed logins {whose}: try again in {self.retry_after_s} s "
            f"(after {self.until.strftime('%Y-%m-%dT%H:%M:%SZ')})"
        )


@dataclass(frozen=True)
class LoginThrottle:
    client: redis.Redis
    account_key: str
    address_key: str
    settings: Settings

    @classmethod
    def of(cls, client: redis.Redis, settings: Settings, email: str, address: str) -> LoginThrottle:
        postgres = settings.postgres
        # Accounts are rows of the services' schema, so their counters are that schema's too: two deployments (or two
        # tests) sharing a Redis never lock each other's users.
        namespace = f"login-failures:{postgres.database}.{postgres.services_schema or 'public'}"
        # Hashed: email addresses stay out of Redis key names (listed by SCAN and monitoring, and kept after an
        # account's erasure until the window ends); lower case because logins match addresses case-insensitively.
        account = hashlib.sha256(email.lower().encode()).hexdigest()
        return cls(client, f"{namespace}:account:{account}", f"{namespace}:address:{address}", settings)

    def reserve(self) -> Refusal | None:
        """Counts this attempt as a failure until `succeeded`; a Refusal (nothing counted) when a limit is reached."""
        services = self.settings.services
        keys = [self.account_key, self.address_key]
        limits = [services.login_attempts_per_account, services.login_attempts_per_address]
        arguments = [str(value) for value in (*limits, services.login_window_s * 1000)]
        # A synchronous client: the answer itself, which redis-py's types cannot tell from an awaitable.
        wait_ms, which = cast(list[int], self.client.eval(_RESERVE, len(keys), *keys, *arguments))
        if not wait_ms:
            return None
        retry_after_s = math.ceil(int(wait_ms) / 1000)
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=retry_after_s)
        return Refusal("account" if which == 1 else "address", retry_after_s, until)

    def succeeded(self) -> None:
        self.client.eval(_SUCCEEDED, 2, self.account_key, self.address_key)
