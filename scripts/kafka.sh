#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft) on loopback for tests and demos, from Maven
# Central jars cached outside git.
#
#   scripts/kafka.sh fetch    resolve the jars (once)
#   scripts/kafka.sh up       format storage if needed, start, wait until it serves metadata
#   scripts/kafka.sh down     stop it
#   scripts/kafka.sh status   say whether it runs
#   scripts/kafka.sh tools    print the classpath of Kafka's command line tools (make bench)
#
# Environment: SLUICE_KAFKA_PORT (default 19092), SLUICE_KAFKA_CONTROLLER_PORT (default port+1),
# SLUICE_KAFKA_SASL_PORT (default port+2), SLUICE_KAFKA_HEAP (default 768m).
#
# The broker's garbage-collection pauses go to .cache/kafka/gc.log: make bench's latency
# row compares them with the stalls it sees. The broker runs with the G1 options Kafka's
# own start script sets; without them (G1 aiming at 200 ms) its young pauses were
# 42-75 ms on a slow day here, with them 17-32 ms on the same day.
#
# Two client listeners: PLAINTEXT on the port, and SASL_PLAINTEXT on the SASL port with the
# mechanisms PLAIN (user "sluice", password "sluice-secret", from the JAAS line below) and
# SCRAM-SHA-256 / SCRAM-SHA-512 (no users at start: SCRAM credentials are data in the
# cluster's metadata, created by whoever needs them, e.g. the tests' fixture, through the
# PLAINTEXT listener). No authorizer: an authenticated client may do anything, as on the
# PLAINTEXT listener. Test credentials only; never a setup for anything real.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

PORT="${SLUICE_KAFKA_PORT:-19092}"
CTRL_PORT="${SLUICE_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
SASL_PORT="${SLUICE_KAFKA_SASL_PORT:-$((PORT + 2))}"
HEAP="${SLUICE_KAFKA_HEAP:-768m}"
POM="$SLUICE_ROOT/scripts/kafka/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")"
LIBS="$SLUICE_TOOLS_CACHE/kafka-$KAFKA_VERSION/libs"
DIR="$SLUICE_STATE/kafka"
PIDFILE="$DIR/broker.pid"
LOGFILE="$DIR/broker.log"

jars_ok() {
  maven_jars_ok "$LIBS" "$LIBS"/kafka_2.13-*.jar "$LIBS"/kafka-clients-*.jar
}

cmd_fetch() {
  jars_ok && return 0
  log "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
  fetch_maven_jars Kafka "$POM" "$LIBS" "$LIBS/../fetch.log" \
    "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless), or set SLUICE_TEST_KAFKA to use an existing broker"
  jars_ok || die "the fetched Kafka jars do not open; delete $LIBS and retry"
}

cmd_tools() {
  # A cache fetched before kafka-tools was in the pom lacks its jar: add what is missing
  # into the same folder, never deleting (a broker may be running from it; the jar is not
  # on its classpath until it restarts, and it adds no dependencies: see the pom).
  cmd_fetch
  if ! ls "$LIBS"/kafka-tools-"$KAFKA_VERSION".jar >/dev/null 2>&1; then
    log "fetching the kafka-tools $KAFKA_VERSION jar into $LIBS"
    mvn -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$LIBS" \
      >"$LIBS/../fetch-tools.log" 2>&1 || die "fetching kafka-tools failed; see $LIBS/../fetch-tools.log"
  fi
  echo "$LIBS/*"
}

write_config() {
  mkdir -p "$DIR/data"
  cat >"$DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CTRL_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CTRL_PORT,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_sluice="sluice-secret";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=$DIR/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.segment.bytes=104857600
log.retention.hours=24
EOF
  cat >"$DIR/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $DIR/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = warn
EOF
}

java_cmd() {
  java -Xms256m "-Xmx$HEAP" -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$DIR/log4j2.properties" -cp "$LIBS/*" "$@"
}

kafka_answers() {
  # Kafka speaks a binary protocol; an ApiVersions request (key 18, v0) and its non-empty
  # answer show the broker is serving, without needing a client library.
  exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
  printf '\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x01\x00\x04sluc' >&3
  local reply
  reply="$(timeout 2 head -c 10 <&3 | od -An -tx1 | tr -d ' \n')" || true
  exec 3<&- 3>&-
  # Bytes 8-9 hold the error code; 0000 means the broker answered properly.
  [ "${#reply}" -ge 20 ] && [ "${reply:16:4}" = "0000" ]
}

cmd_up() {
  local pid
  pid="$(read_pid "$PIDFILE")"
  if pid_alive "$pid"; then
    echo "Kafka is already running (pid $pid) on 127.0.0.1:$PORT; 'make kafka-down' stops it" >&2
    echo "127.0.0.1:$PORT"
    return 0
  fi
  rm -f "$PIDFILE"
  require_port_free "$PORT" "wanted for the Kafka listener" SLUICE_KAFKA_PORT
  require_port_free "$CTRL_PORT" "wanted for the Kafka controller" SLUICE_KAFKA_CONTROLLER_PORT
  require_port_free "$SASL_PORT" "wanted for the Kafka SASL listener" SLUICE_KAFKA_SASL_PORT
  cmd_fetch
  need java "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
  write_config
  # Test data is disposable: storage formatted by another Kafka release is formatted anew,
  # so the new release's features (share groups, say) are on from the start.
  if [ -f "$DIR/data/meta.properties" ] && [ "$(cat "$DIR/data/.sluice-kafka-version" 2>/dev/null)" != "$KAFKA_VERSION" ]; then
    log "storage in $DIR/data was formatted by another Kafka release; formatting it anew for $KAFKA_VERSION"
    rm -rf "$DIR/data"
    mkdir -p "$DIR/data"
  fi
  if [ ! -f "$DIR/data/meta.properties" ]; then
    log "formatting KRaft storage in $DIR/data"
    java_cmd kafka.tools.StorageTool format --standalone -t "$(java_cmd kafka.tools.StorageTool random-uuid)" \
      -c "$DIR/server.properties" >"$DIR/format.log" 2>&1 ||
      java_cmd kafka.tools.StorageTool format -t "$(java_cmd kafka.tools.StorageTool random-uuid)" \
        -c "$DIR/server.properties" >"$DIR/format.log" 2>&1 ||
      die "formatting Kafka storage failed; see $DIR/format.log"
    echo "$KAFKA_VERSION" >"$DIR/data/.sluice-kafka-version"
  fi
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$PORT, SASL_PLAINTEXT on 127.0.0.1:$SASL_PORT (log: $LOGFILE)"
  # The JVM options Kafka's own start script gives the broker (kafka-run-class.sh,
  # KAFKA_JVM_PERFORMANCE_OPTS): G1 aiming at 20 ms pauses rather than its default 200.
  setsid bash -c 'exec "$@"' _ java -Xms256m "-Xmx$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    "-Xlog:gc:file=$DIR/gc.log:uptime,time:filecount=2,filesize=10m" \
    "-Dlog4j2.configurationFile=$DIR/log4j2.properties" -cp "$LIBS/*" \
    kafka.Kafka "$DIR/server.properties" >"$LOGFILE" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local rc=0
  wait_until 90 "Kafka on 127.0.0.1:$PORT" "$PIDFILE" kafka_answers || rc=$?
  if [ "$rc" = 2 ]; then
    rm -f "$PIDFILE"
    die "Kafka exited during start-up; last lines of $LOGFILE: $(tail -3 "$LOGFILE" "$DIR/server.log" 2>/dev/null | tr '\n' ' ')"
  elif [ "$rc" != 0 ]; then
    stop_pidfile "$PIDFILE" kafka
    die "Kafka did not serve metadata within 90 s; see $LOGFILE and $DIR/server.log"
  fi
  echo "127.0.0.1:$PORT"
}

cmd_down() {
  if pid_alive "$(read_pid "$PIDFILE")"; then
    stop_pidfile "$PIDFILE" kafka
  else
    rm -f "$PIDFILE"
    echo "Kafka is not running" >&2
  fi
}

cmd_status() {
  local pid
  pid="$(read_pid "$PIDFILE")"
  if pid_alive "$pid"; then
    echo "Kafka running (pid $pid) on 127.0.0.1:$PORT (SASL_PLAINTEXT on 127.0.0.1:$SASL_PORT)"
  else
    echo "Kafka not running"
    return 3
  fi
}

case "${1:-}" in
fetch) cmd_fetch ;;
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
tools) cmd_tools ;;
clean)
  cmd_down
  rm -rf "$DIR"
  ;;
*)
  echo "usage: $0 fetch|up|down|status|tools|clean" >&2
  exit 2
  ;;
esac
