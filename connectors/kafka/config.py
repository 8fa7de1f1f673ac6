"""librdkafka configuration as the clients take it."""

from __future__ import annotations

from collections.abc import Mapping

ConfigValue = str | int | float | bool
ClientConfig = Mapping[str, ConfigValue]
