#!/usr/bin/env bash
# A Confluent-compatible schema registry on loopback for tests and demos: Apicurio Registry
# (open source, from Maven Central), its in-memory storage, serving the Confluent API under
# /apis/ccompat/v7. Maven Central carries the registry's application module as a plain jar,
# so scripts/registry/pom.xml assembles the runnable Quarkus application from it (once,
# cached outside git like the Kafka jars). Version 2.4: the newest whose modules Maven
# Central serves in full (3.x lacks its schema-util, config and serde modules there).
#
#   scripts/registry.sh fetch    build the application (once)
#   scripts/registry.sh up       start it, wait until it is ready, print its URL
#   scripts/registry.sh down     stop it
#   scripts/registry.sh status   say whether it runs
#
# Environment: SLUICE_REGISTRY_PORT (default 18081), SLUICE_REGISTRY_HEAP (default 384m).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

PORT="${SLUICE_REGISTRY_PORT:-18081}"
HEAP="${SLUICE_REGISTRY_HEAP:-384m}"
POM="$SLUICE_ROOT/scripts/registry/pom.xml"
VERSION="$(sed -n 's:.*<apicurio.version>\(.*\)</apicurio.version>.*:\1:p' "$POM")"
APP="$SLUICE_TOOLS_CACHE/apicurio-registry-$VERSION"
DIR="$SLUICE_STATE/registry"
PIDFILE="$DIR/registry.pid"
LOGFILE="$DIR/registry.log"
URL="http://127.0.0.1:$PORT/apis/ccompat/v7"

RUNNER="$APP/sluice-schema-registry-1-runner.jar"

app_ok() {
  [ -f "$APP/.complete" ] && unzip -tq "$RUNNER" >/dev/null 2>&1
}

cmd_fetch() {
  app_ok && return 0
  need java "install a Java 17 JDK (Debian: apt-get install openjdk-17-jdk-headless), or set SLUICE_TEST_SCHEMA_REGISTRY to use an existing registry"
  need mvn "install Maven (Debian: apt-get install maven) to build the schema registry"
  log "building Apicurio Registry $VERSION from Maven Central into $APP (first time only)"
  rm -rf "$APP"
  mkdir -p "$APP/build"
  cp "$POM" "$APP/build/pom.xml"
  (cd "$APP/build" && mvn -q -B package -DskipTests >"$APP/build.log" 2>&1) ||
    die "building the schema registry failed; see $APP/build.log"
  # The registry's build settings ask for Quarkus' legacy layout: a runner jar and lib/.
  mv "$APP/build/target/sluice-schema-registry-1-runner.jar" "$APP/build/target/lib" "$APP/"
  rm -rf "$APP/build"
  touch "$APP/.complete"
  app_ok || die "the built registry does not open; delete $APP and retry"
}

registry_ready() {
  curl -fsS "http://127.0.0.1:$PORT/health/ready" >/dev/null &&
    curl -fsS "$URL/subjects" >/dev/null
}

cmd_up() {
  local pid
  pid="$(read_pid "$PIDFILE")"
  if pid_alive "$pid"; then
    echo "the schema registry is already running (pid $pid); 'make registry-down' stops it" >&2
    echo "$URL"
    return 0
  fi
  rm -f "$PIDFILE"
  require_port_free "$PORT" "wanted for the schema registry" SLUICE_REGISTRY_PORT
  cmd_fetch
  need curl "install curl (Debian: apt-get install curl)"
  mkdir -p "$DIR"
  log "starting Apicurio Registry $VERSION on 127.0.0.1:$PORT (log: $LOGFILE)"
  setsid bash -c 'exec "$@"' _ java -Xms64m "-Xmx$HEAP" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Djava.awt.headless=true -Dquarkus.http.host=127.0.0.1 "-Dquarkus.http.port=$PORT" \
    -Dquarkus.log.level=WARN -Dquarkus.log.category.io.apicurio.level=WARN \
    -jar "$RUNNER" >"$LOGFILE" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local rc=0
  wait_until 120 "the schema registry on 127.0.0.1:$PORT" "$PIDFILE" registry_ready || rc=$?
  if [ "$rc" = 2 ]; then
    rm -f "$PIDFILE"
    die "the schema registry exited during start-up; last lines of $LOGFILE: $(tail -5 "$LOGFILE" | tr '\n' ' ')"
  elif [ "$rc" != 0 ]; then
    stop_pidfile "$PIDFILE" "schema registry"
    die "the schema registry was not ready within 120 s; see $LOGFILE"
  fi
  echo "$URL"
}

cmd_down() {
  if pid_alive "$(read_pid "$PIDFILE")"; then
    stop_pidfile "$PIDFILE" "schema registry"
  else
    rm -f "$PIDFILE"
    echo "the schema registry is not running" >&2
  fi
}

cmd_status() {
  local pid
  pid="$(read_pid "$PIDFILE")"
  if pid_alive "$pid"; then
    echo "schema registry running (pid $pid) at $URL"
  else
    echo "schema registry not running"
    return 3
  fi
}

case "${1:-}" in
fetch) cmd_fetch ;;
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
clean)
  cmd_down
  rm -rf "$DIR"
  ;;
*)
  echo "usage: $0 fetch|up|down|status|clean" >&2
  exit 2
  ;;
esac
