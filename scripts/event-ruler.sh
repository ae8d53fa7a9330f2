#!/usr/bin/env bash
# AWS's event-ruler (the matcher behind Amazon EventBridge) and the small harness the
# differential pattern test drives, fetched and compiled once, cached outside git.
#
#   scripts/event-ruler.sh fetch      resolve the jars (once)
#   scripts/event-ruler.sh classpath  fetch if needed, compile the harness if it changed,
#                                     print the classpath to run it with
#
# The harness is tests/differential/EventRulerHarness.java; its classes are cached under a
# name derived from its content, so an edit is compiled again and nothing stale is used.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

POM="$SLUICE_ROOT/scripts/event-ruler/pom.xml"
VERSION="$(sed -n 's:.*<event-ruler.version>\(.*\)</event-ruler.version>.*:\1:p' "$POM")"
HOME_DIR="$SLUICE_TOOLS_CACHE/event-ruler-$VERSION"
LIBS="$HOME_DIR/libs"
HARNESS="$SLUICE_ROOT/tests/differential/EventRulerHarness.java"

jars_ok() {
  maven_jars_ok "$LIBS" "$LIBS"/event-ruler-*.jar "$LIBS"/jackson-databind-*.jar
}

cmd_fetch() {
  jars_ok && return 0
  log "fetching event-ruler $VERSION jars from Maven Central into $LIBS"
  mkdir -p "$HOME_DIR"
  fetch_maven_jars event-ruler "$POM" "$LIBS" "$HOME_DIR/fetch.log" \
    "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jdk-headless)"
  jars_ok || die "the fetched event-ruler jars do not open; delete $LIBS and retry"
}

compile_harness() {
  # compile_harness DIR: javac where there is a JDK, else the Eclipse compiler (fetched once),
  # which runs on a plain Java runtime.
  local jars
  jars="$(printf '%s:' "$LIBS"/*.jar)"
  if command -v javac >/dev/null 2>&1; then
    javac -nowarn -d "$1" -cp "$jars" "$HARNESS"
    return
  fi
  local ecj_version ecj_dir
  ecj_version="$(sed -n 's:.*<ecj.version>\(.*\)</ecj.version>.*:\1:p' "$POM")"
  ecj_dir="$SLUICE_TOOLS_CACHE/ecj-$ecj_version"
  if [ ! -f "$ecj_dir/ecj-$ecj_version.jar" ]; then
    need mvn "install Maven (Debian: apt-get install maven) to fetch a Java compiler"
    log "no javac: fetching the Eclipse Java compiler $ecj_version into $ecj_dir"
    mkdir -p "$ecj_dir"
    mvn -q -B dependency:copy "-Dartifact=org.eclipse.jdt:ecj:$ecj_version" \
      -DoutputDirectory="$ecj_dir" || return 1
  fi
  java -jar "$ecj_dir/ecj-$ecj_version.jar" -17 -nowarn -d "$1" -cp "$jars" "$HARNESS"
}

cmd_classpath() {
  cmd_fetch
  local digest classes
  digest="$(sha256sum "$HARNESS" | cut -c1-16)"
  classes="$HOME_DIR/harness-$digest"
  if [ ! -f "$classes/.complete" ]; then
    log "compiling ${HARNESS##*/} against event-ruler $VERSION"
    rm -rf "$classes"
    mkdir -p "$classes"
    compile_harness "$classes" >"$HOME_DIR/compile.log" 2>&1 ||
      die "compiling the harness failed: $(tail -c 2000 "$HOME_DIR/compile.log" | tr '\n' ' ')"
    touch "$classes/.complete"
  fi
  echo "$classes:$LIBS/*"
}

case "${1:-}" in
fetch) cmd_fetch ;;
classpath) cmd_classpath ;;
*)
  echo "usage: $0 fetch|classpath" >&2
  exit 2
  ;;
esac
