#!/usr/bin/env bash
# Runs every test of dstream and prints the total as its last line:
#   N passed, N failed
# C unit tests run twice (a normal build and an ASan+UBSan build, by ctest);
# the fuzz targets run for a bounded number of inputs; luacheck checks every
# Lua file (one check); the busted specs run under LuaJIT twice, against the
# normal build and against the ASan+UBSan build of the C module.
set -u
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
passed=0
failed=0

build() { # dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" "$@" >"$dir.log" 2>&1 && cmake --build "$dir" -j"$jobs" >>"$dir.log" 2>&1
}

ctest_count() { # dir label
  local out summary total bad
  out=$(cd "$1" && ctest --output-on-failure -j"$jobs" 2>&1)
  echo "$out" | grep -E 'Test +#|tests passed|Failed|check failed|ERROR' | sed "s/^/[$2] /"
  summary=$(echo "$out" | grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' | tail -n 1)
  if [ -z "$summary" ]; then
    echo "[$2] ctest did not run"; failed=$((failed + 1)); return
  fi
  total=$(echo "$summary" | sed -E 's/.*out of ([0-9]+).*/\1/')
  bad=$(echo "$summary" | sed -E 's/.*, ([0-9]+) tests? failed.*/\1/')
  passed=$((passed + total - bad))
  failed=$((failed + bad))
}

# Each build asks for -Werror and for the C tests (DS_WERROR is off and the
# tests are skipped in a LuaRocks build); build/ also holds bench/'s programs.
mkdir -p build
if build build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDS_WERROR=ON -DDS_BUILD_TESTS=ON -DDS_BUILD_BENCH=ON; then
  ctest_count build c
else
  echo "build failed:"; tail -n 40 build.log; failed=$((failed + 1))
fi

if build build-asan -DCMAKE_BUILD_TYPE=Debug -DDS_SANITIZE=ON -DDS_WERROR=ON -DDS_BUILD_TESTS=ON; then
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest_count build-asan c+asan
else
  echo "sanitizer build failed:"; tail -n 40 build-asan.log; failed=$((failed + 1))
fi

# The libFuzzer targets in fuzz/ (clang, ASan, UBSan), each for a bounded
# number of inputs (DS_FUZZ_RUNS, default 300000; a long run is
# DS_FUZZ_RUNS=-1 with -max_total_time in DS_FUZZ_ARGS).
fuzz_runs=${DS_FUZZ_RUNS:-300000}
if ! command -v clang >/dev/null; then
  echo "[fuzz] clang is not installed (the README's first command installs it)"; failed=$((failed + 1))
elif CC=clang build build-fuzz -DCMAKE_BUILD_TYPE=Debug -DDS_SANITIZE=ON -DDS_FUZZ=ON -DDS_WERROR=ON; then
  for target in build-fuzz/fuzz_*; do
    [ -x "$target" ] || continue
    name=$(basename "$target")
    artifacts=$(mktemp -d)
    # The seeds in fuzz/corpus/<name minus fuzz_> are read, never written:
    # what the run finds goes to a temporary first corpus directory.
    corpus=()
    if [ -d "fuzz/corpus/${name#fuzz_}" ]; then
      corpus=("$(mktemp -d)" "fuzz/corpus/${name#fuzz_}")
    fi
    if "$target" -runs="$fuzz_runs" -artifact_prefix="$artifacts/" ${DS_FUZZ_ARGS:-} "${corpus[@]}" >"build-fuzz/$name.log" 2>&1; then
      echo "[fuzz] $name: $(grep -E '^Done [0-9]+ runs' "build-fuzz/$name.log")"; passed=$((passed + 1))
    else
      echo "[fuzz] $name failed; input kept in $artifacts:"; grep -E 'fuzz_|ERROR|SUMMARY' "build-fuzz/$name.log" | head -n 20 | sed 's/^/[fuzz] /'
      failed=$((failed + 1))
    fi
  done
else
  echo "fuzz build failed:"; tail -n 40 build-fuzz.log; failed=$((failed + 1))
fi

# luacheck (.luacheckrc): the Lua modules, the command, examples, benchmarks and specs.
if luacheck --formatter plain lua bin/dstream examples bench spec >luacheck.log 2>&1; then
  echo "[lint] luacheck: no warnings"; passed=$((passed + 1))
else
  echo "[lint] luacheck:"; sed 's/^/[lint] /' luacheck.log; failed=$((failed + 1))
fi

specs() { # label, env and busted args...
  local label=$1 tap ok notok plan; shift
  tap=$(env "$@" -o TAP 2>&1)
  echo "$tap" | grep -vE '^ok ' | sed "s/^/[$label] /"
  ok=$(echo "$tap" | grep -cE '^ok ')
  notok=$(echo "$tap" | grep -cE '^not ok ')
  plan=$(echo "$tap" | grep -E '^1\.\.[0-9]+' | tail -n 1 | sed 's/^1\.\.//')
  passed=$((passed + ok))
  failed=$((failed + notok))
  if [ -z "$plan" ] || [ $((ok + notok)) -ne "$plan" ]; then
    echo "[$label] busted did not finish its plan"; failed=$((failed + 1))
  fi
}

if [ -f build/dstream/core.so ]; then
  specs spec busted "$@"
fi
# The specs again against the ASan+UBSan build of the C module (.busted's
# "asan" run); LuaJIT itself is not instrumented, so its runtimes are
# preloaded and leak checking (which would report LuaJIT's own) is off.
if [ -f build-asan/dstream/core.so ]; then
  specs spec+asan LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
    ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 busted --run=asan "$@"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
