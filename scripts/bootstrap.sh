#!/usr/bin/env bash
# Installs everything Suuupra Streams needs, from the package registries only:
#   Debian packages (ClickHouse, Redis, PostgreSQL, Maven), the Python environment in .venv (one pip command,
#   so pip honours Apache Beam's pins), and the JVM components from Maven Central (Kafka, Apicurio Registry, the
#   Flink connectors) plus the jobs' own Java functions (connectors/jvm, compiled with Maven).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

missing=()
command -v clickhouse-server >/dev/null || missing+=(clickhouse-server)
command -v redis-server >/dev/null || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v mvn >/dev/null || missing+=(maven)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
# connectors/jvm (the jobs' Java functions) is compiled here.
command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v chromium >/dev/null || missing+=(chromium)
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}; run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Apicurio Registry 3.3 needs Java 21+; Debian 12 packages only 17, so a JDK under /usr/lib/jvm (the machine
# image's Temurin) or SUUUPRA_PLATFORM__REGISTRY_JAVA must provide it.
java21=${SUUUPRA_PLATFORM__REGISTRY_JAVA:-}
if [ -z "$java21" ]; then
  for candidate in /usr/lib/jvm/*/bin/java; do
    major=$("$candidate" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
    if [ "${major:-0}" -ge 21 ]; then java21=$candidate; break; fi
  done
fi
if [ -z "$java21" ]; then
  echo "no Java 21+ found for Apicurio Registry: install a JDK 21+ under /usr/lib/jvm or set SUUUPRA_PLATFORM__REGISTRY_JAVA" >&2
  exit 1
fi

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
  echo "Python 3.11 is needed (PyFlink 2.2 and Feast); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
[ -x .venv/bin/python ] || { say "creating .venv"; "$PYTHON" -m venv .venv; }

stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "pip install (PyFlink, Feast, confluent-kafka, clickhouse-driver, chdb, ...)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q --only-binary=apache-beam -e ".[dev]"
  .venv/bin/python -m pip check
  rm -f .venv/.installed-* && touch "$stamp"
fi

say "fetching the platform's JVM components (Maven Central)"
.venv/bin/suuupra platform install
