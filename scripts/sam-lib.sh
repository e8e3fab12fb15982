# Sourced by scripts/sam-invoke.sh and scripts/sam-api.sh: what `sam local` needs on this
# machine, each piece set up only when it is missing, and everything started here stopped again
# on exit (Ctrl-C included), in reverse order:
#   - Docker: Debian's docker.io, and a dockerd of our own when none answers;
#   - arm64 emulation (the function is arm64, see template.yaml): qemu-user-static + binfmt_misc;
#   - the base image SAM looks for (public.ecr.aws/lambda/provided:al2023-arm64), built here
#     from a few Debian arm64 packages, never pulled, and cached in .sam-local/images/;
#   - dynalite on the Docker bridge's own address, so the function's container can reach it and
#     nothing beyond this machine can, seeded with the sample users;
#   - a copy of the template `sam build` wrote that declares AWS_ENDPOINT_URL_* (see
#     sam_local_template for why the source template does not).
# Each step's duration goes to stderr and to .sam-local/timings.log.

SAM_LOCAL_DIR="$PWD/.sam-local"
SAM_BASE_IMAGE=public.ecr.aws/lambda/provided:al2023-arm64
# Bump when the image recipe below changes: a cached or loaded image of another recipe is rebuilt.
SAM_IMAGE_RECIPE=1
# Debian packages of the image: glibc (bookworm's 2.36; AL2023 has 2.34) and libgcc_s for the
# Rust binary, busybox for the /bin/sh, mv and chmod of the Dockerfile SAM builds on top of it.
SAM_IMAGE_PACKAGES=(libc6 libgcc-s1 busybox-static)
SAM_FUNCTION=ApiFunction

# Local endpoints accept any credentials; real ones from the environment win.
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="$AWS_REGION"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
export SAM_CLI_TELEMETRY=0
export PATH="$PWD/.venv/bin:$PATH"

mkdir -p "$SAM_LOCAL_DIR"
SAM_DEAD_PORT=$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

sam_log() { echo "sam-local: $*" >&2; }
sam_die() { sam_log "$*"; exit 1; }

# SAM CLI asks STS for the account id each time it starts, a call to AWS that these machines
# cannot make (seen here: 6 s to 100 s of DNS timeouts per command) and that a local run does
# not need: it goes to a loopback port where nothing listens and fails at once.
SAM_ENV=(env "AWS_ENDPOINT_URL_STS=http://127.0.0.1:$SAM_DEAD_PORT" AWS_MAX_ATTEMPTS=1
  AWS_EC2_METADATA_DISABLED=true)
sam() { "${SAM_ENV[@]}" sam "$@"; }

# sam_background LOG ARGS...: `sam ARGS...` in the background, its output to LOG (- for this
# script's stderr); sets SAM_PID to SAM's own pid. Bash starts background commands with SIGINT
# ignored, and a shell that was itself started so cannot undo it with `trap`: SAM gets the
# default back before it starts, so that Ctrl-C (or sam_kill PID INT) makes it remove its
# containers before it exits.
sam_background() {
  local log=$1
  shift
  local command=(python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' "${SAM_ENV[@]}" sam "$@")
  if [ "$log" = - ]; then
    "${command[@]}" &
  else
    "${command[@]}" >"$log" 2>&1 &
  fi
  SAM_PID=$!
}

# sam_timed LABEL CMD...: runs CMD and records how long it took.
sam_timed() {
  local label=$1 start=$SECONDS status=0
  shift
  "$@" || status=$?
  local line
  line="$(date -u +%FT%TZ) $label: $((SECONDS - start)) s"
  echo "$line" >>"$SAM_LOCAL_DIR/timings.log"
  sam_log "$label took $((SECONDS - start)) s"
  return "$status"
}

# --- cleanup -------------------------------------------------------------------------------------

_sam_exit_actions=()
sam_on_exit() { _sam_exit_actions+=("$1"); }
_sam_run_exit_actions() {
  local i
  trap '' INT TERM   # a second Ctrl-C must not cut the cleanup short
  for ((i = ${#_sam_exit_actions[@]} - 1; i >= 0; i--)); do
    eval "${_sam_exit_actions[i]}" || true
  done
}
trap _sam_run_exit_actions EXIT
trap 'exit 130' INT TERM

# sam_kill PID [SIGNAL [SECONDS]]: SIGNAL (TERM), then KILL if it is still there after SECONDS
# (10).
sam_kill() {
  local pid=$1 signal=${2:-TERM} seconds=${3:-10} i
  kill -s "$signal" "$pid" 2>/dev/null || return 0
  for ((i = 0; i < seconds * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# --- packages ------------------------------------------------------------------------------------

_sam_apt_updated=
sam_install_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || sam_die "missing ${missing[*]}: run sudo apt-get install ${missing[*]}"
  if [ -z "$_sam_apt_updated" ]; then
    apt-get update -q >&2
    _sam_apt_updated=1
  fi
  sam_log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# --- docker --------------------------------------------------------------------------------------

# Sets SAM_DOCKERD_PID when it starts dockerd (and stops it on exit), and SAM_BRIDGE_IP.
sam_docker_up() {
  SAM_DOCKERD_PID=
  command -v ip >/dev/null || sam_install_packages iproute2
  if ! docker info >/dev/null 2>&1; then
    # /usr/local/bin/docker may be a client alone: the daemon is Debian's.
    command -v dockerd >/dev/null || sam_timed "install docker.io" sam_install_packages docker.io
    sam_timed "start dockerd" _sam_start_dockerd
  fi
  # The host's own address on the default bridge (docker0), which containers reach. A dockerd
  # that has only just started (right after docker.io was installed, say) answers before its
  # bridge network has its gateway: wait for it, a minute at most.
  SAM_BRIDGE_IP=
  local i
  for ((i = 0; i < 60; i++)); do
    SAM_BRIDGE_IP=$(_sam_bridge_gateway)
    [ -n "$SAM_BRIDGE_IP" ] && break
    sleep 1
  done
  [ -n "$SAM_BRIDGE_IP" ] ||
    sam_die "the bridge network has no IPv4 gateway after 60 s: containers could not reach this host (see $SAM_LOCAL_DIR/dockerd.log if this script started dockerd)"
  [ "$i" -eq 0 ] || sam_log "the bridge network had its IPv4 gateway after $i s"
  _sam_containers_before=$(docker ps -aq --no-trunc --filter label=sam.cli.container.type | sort)
  sam_on_exit _sam_remove_our_containers
}

# The IPv4 gateway of dockerd's default bridge network; nothing while it has none (or no bridge
# network yet). A dockerd on a fresh data root (the first start after docker.io is installed)
# leaves the gateway out of the network's IPAM config for good: it is then the address of the
# bridge's interface (docker0).
_sam_bridge_gateway() {
  local ipv4='^[0-9]+(\.[0-9]+){3}$' gateway bridge
  gateway=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' 2>/dev/null |
    tr ' ' '\n' | grep -m1 -E "$ipv4" || true)
  if [ -z "$gateway" ]; then
    bridge=$(docker network inspect bridge \
      -f '{{index .Options "com.docker.network.bridge.name"}}' 2>/dev/null || true)
    gateway=$(ip -4 -o addr show dev "${bridge:-docker0}" 2>/dev/null |
      awk '{ sub("/.*", "", $4); print $4; exit }' | grep -E "$ipv4" || true)
  fi
  echo "$gateway"
}

_sam_start_dockerd() {
  local pidfile="$SAM_LOCAL_DIR/dockerd.pid" i
  rm -f "$pidfile"
  # Its own session: the terminal's Ctrl-C reaches SAM, which removes its containers, and this
  # script's cleanup stops dockerd after that.
  # --userland-proxy=false: a published port then answers only once the container listens on
  # it. docker-proxy accepts at once, so SAM, which waits for a connection and then sends the
  # event once, would now and then send it before the emulator listens (slow to start under
  # qemu) and then wait out the function's whole timeout ("No response from invoke container").
  setsid dockerd --pidfile "$pidfile" --userland-proxy=false \
    >"$SAM_LOCAL_DIR/dockerd.log" 2>&1 </dev/null &
  for ((i = 0; i < 600; i++)); do
    if [ -s "$pidfile" ] && docker info >/dev/null 2>&1; then
      SAM_DOCKERD_PID=$(cat "$pidfile")
      sam_on_exit _sam_stop_dockerd
      return 0
    fi
    sleep 0.1
  done
  sam_die "dockerd did not answer within 60 s: see $SAM_LOCAL_DIR/dockerd.log"
}

_sam_stop_dockerd() {
  [ -n "$SAM_DOCKERD_PID" ] || return 0
  sam_log "stopping the dockerd it started (pid $SAM_DOCKERD_PID)"
  local i
  kill "$SAM_DOCKERD_PID" 2>/dev/null || return 0
  # dockerd stops its containers and its containerd before it exits.
  for ((i = 0; i < 300; i++)); do
    kill -0 "$SAM_DOCKERD_PID" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$SAM_DOCKERD_PID" 2>/dev/null || true
}

# SAM removes the containers it runs, except when it is killed before it can: remove, by id, the
# SAM containers that appeared while this script ran.
_sam_remove_our_containers() {
  local ids
  ids=$(comm -13 <(echo "$_sam_containers_before") \
    <(docker ps -aq --no-trunc --filter label=sam.cli.container.type | sort))
  [ -n "$ids" ] || return 0
  sam_log "removing containers $(echo "$ids" | cut -c1-12 | tr '\n' ' ')"
  # shellcheck disable=SC2086
  docker rm -f $ids >/dev/null
}

# --- arm64 emulation -----------------------------------------------------------------------------

sam_arm64_emulation() {
  [ "$(uname -m)" = aarch64 ] && return 0
  local entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
  if [ ! -e "$entry" ]; then
    sam_install_packages qemu-user-static binfmt-support
    mountpoint -q /proc/sys/fs/binfmt_misc ||
      mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-aarch64
  fi
  # F: the kernel opens the interpreter now, so it works inside containers, which lack it.
  grep -q '^flags:.*F' "$entry" ||
    sam_die "$entry lacks flag F: arm64 programs would not run inside containers"
}

# --- the base image ------------------------------------------------------------------------------

sam_base_image() {
  local cache="$SAM_LOCAL_DIR/images/provided-al2023-arm64-r$SAM_IMAGE_RECIPE.tar"
  if [ "$(docker image inspect -f '{{index .Config.Labels "async-api.recipe"}}' \
    "$SAM_BASE_IMAGE" 2>/dev/null)" = "$SAM_IMAGE_RECIPE" ]; then
    return 0
  fi
  if [ -s "$cache" ]; then
    sam_timed "load the cached base image" docker load -q -i "$cache" >&2
    return 0
  fi
  sam_timed "build the base image" _sam_build_base_image
  mkdir -p "$(dirname "$cache")"
  sam_timed "save the base image" docker save -o "$cache.part" "$SAM_BASE_IMAGE"
  mv "$cache.part" "$cache"
}

# A root file system of a few arm64 Debian packages, unpacked here (no arm64 code runs to make
# it), from the Debian mirror apt is configured with, through a private apt state under
# .sam-local/ so the host's apt is not changed; then `docker build FROM scratch` with
# --platform, so the image says arm64 (`docker import` would label it amd64).
_sam_build_base_image() {
  local apt="$SAM_LOCAL_DIR/apt-arm64" root="$SAM_LOCAL_DIR/rootfs-arm64"
  local ctx="$SAM_LOCAL_DIR/image-context"
  rm -rf "$apt" "$root" "$ctx"
  mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/sources.list.d" "$root" "$ctx"
  : >"$apt/status"
  _sam_debian_sources >"$apt/sources.list"
  [ -s "$apt/sources.list" ] || { apt-get update -q >&2 && _sam_debian_sources >"$apt/sources.list"; }
  [ -s "$apt/sources.list" ] || sam_die "no Debian source in apt's configuration"
  local opts=(
    -o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/sources.list.d"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::State::Status=$apt/status"
    -o "Dir::Cache::Archives=$apt/archives" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
    -o APT::Architecture=arm64 -o APT::Architectures=arm64 -o Debug::NoLocking=1
    -o APT::Sandbox::User=root -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
  )
  apt-get -q "${opts[@]}" update >&2
  (cd "$apt/archives" && apt-get -q "${opts[@]}" download "${SAM_IMAGE_PACKAGES[@]}" >&2)
  local deb
  for deb in "$apt"/archives/*.deb; do dpkg-deb -x "$deb" "$root"; done

  mkdir -p "$root"/{bin,dev,proc,sys,tmp,opt,var/task,var/runtime,etc/ssl/certs}
  chmod 1777 "$root/tmp"
  local applet
  for applet in sh mv chmod cp rm mkdir ls cat env; do
    ln -sf /bin/busybox "$root/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  # Names resolve from /etc/hosts (host.docker.internal) before any DNS server is asked.
  echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
  # The AWS SDK's TLS loads the system's roots, as from AL2023's bundle.
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$ctx/rootfs.tar" .
  cat >"$ctx/Dockerfile" <<EOF
FROM scratch
ADD rootfs.tar /
ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 TZ=:/etc/localtime \
    LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime
LABEL async-api.recipe=$SAM_IMAGE_RECIPE
WORKDIR /var/task
EOF
  # The classic builder: this daemon's (20.10) BuildKit is not needed for FROM scratch + ADD.
  DOCKER_BUILDKIT=0 docker build -q --platform linux/arm64 -t "$SAM_BASE_IMAGE" "$ctx" >&2
  local arch
  arch=$(docker image inspect -f '{{.Architecture}}' "$SAM_BASE_IMAGE")
  [ "$arch" = arm64 ] || sam_die "$SAM_BASE_IMAGE is labelled $arch, not arm64"
  rm -rf "$apt" "$root" "$ctx"
}

# `deb` lines for the Debian archives apt is configured with (origin Debian), for arm64.
_sam_debian_sources() {
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg options="arch=arm64"
  [ -f "$keyring" ] && options="$options signed-by=$keyring"
  apt-cache policy 2>/dev/null | awk -v options="$options" '
    $1 ~ /^[0-9]+$/ && $2 ~ /^(https?|file):/ { uri = $2; split($3, sc, "/"); next }
    $1 == "release" && uri != "" && $2 ~ /(^|,)o=Debian(,|$)/ {
      line = "deb [" options "] " uri " " sc[1] " " sc[2]
      if (!(line in seen)) { seen[line] = 1; print line }
      uri = ""
    }'
}

# --- the function and its environment ------------------------------------------------------------

# The template `sam build` wrote, with AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_LAMBDA
# declared, so that --env-vars can set them (it only overrides declared variables). They are
# not declared in template.yaml itself: Lambda would then set them to "" in AWS, and the AWS SDK
# takes a variable that is set, even empty, as the endpoint to use (aws-runtime's
# EnvConfigValue::load), so every call of the deployed function would fail.
sam_local_template() {
  local built=.aws-sam/build/template.yaml
  [ -f "$built" ] || sam_die "$built is missing: run make build"
  SAM_TEMPLATE="$SAM_LOCAL_DIR/template.yaml"
  "$PWD/.venv/bin/python" - "$built" "$SAM_TEMPLATE" <<'PY'
import os
import sys

from samcli.yamlhelper import yaml_dump, yaml_parse

source, target = sys.argv[1:]
with open(source) as f:
    template = yaml_parse(f.read())
base = os.path.dirname(os.path.abspath(source))
for resource in template["Resources"].values():
    if resource.get("Type") != "AWS::Serverless::Function":
        continue
    properties = resource["Properties"]
    # The copy lives elsewhere: code paths become absolute.
    properties["CodeUri"] = os.path.join(base, properties["CodeUri"])
    variables = properties.setdefault("Environment", {}).setdefault("Variables", {})
    for name in ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_LAMBDA"):
        variables.setdefault(name, "")
with open(target, "w") as f:
    f.write(yaml_dump(template))
PY
}

# Writes the --env-vars file from USERS_TABLE, TASKS_TABLE, CORS_ALLOWED_ORIGINS and the two
# endpoints; sets SAM_ENV_VARS to its path.
sam_env_vars() {
  SAM_ENV_VARS="$SAM_LOCAL_DIR/env-vars.$$.json"
  sam_on_exit "rm -f '$SAM_ENV_VARS'"
  "$PWD/.venv/bin/python" - >"$SAM_ENV_VARS" <<'PY'
import json
import os

names = ["USERS_TABLE", "TASKS_TABLE", "CORS_ALLOWED_ORIGINS",
         "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_LAMBDA"]
print(json.dumps({"Parameters": {name: os.environ.get(name, "") for name in names}}))
PY
}

# Options every `sam local` command here takes.
sam_container_options() {
  SAM_OPTIONS=(--template-file "$SAM_TEMPLATE" --env-vars "$SAM_ENV_VARS" --skip-pull-image
    --add-host "host.docker.internal:$SAM_BRIDGE_IP")
}

# --- dynalite ------------------------------------------------------------------------------------

# Starts dynalite on the bridge's address unless AWS_ENDPOINT_URL_DYNAMODB is set, then creates
# and seeds the tables (idempotent).
sam_dynalite() {
  : "${USERS_TABLE:=users}" "${TASKS_TABLE:=tasks}"
  export USERS_TABLE TASKS_TABLE
  if [ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]; then
    local port fd
    # tests/support/dynalite.js listens on loopback, which a container cannot reach.
    exec {fd}< <(exec node -e '
      const server = require("dynalite")({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
      server.on("error", (err) => { console.error(`dynalite: ${err.message}`); process.exit(1); });
      server.listen(0, process.argv[1], () => console.log(server.address().port));
      for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
    ' "$SAM_BRIDGE_IP")
    local pid=$!
    sam_on_exit "sam_kill $pid"
    read -r -t 20 port <&"$fd" || sam_die "dynalite did not start on $SAM_BRIDGE_IP"
    export AWS_ENDPOINT_URL_DYNAMODB="http://$SAM_BRIDGE_IP:$port"
    sam_log "dynalite: $AWS_ENDPOINT_URL_DYNAMODB (in memory: data goes when it stops)"
  fi
  sam_timed "seed" "$SAM_EXAMPLES/seed" >&2
}

# A free TCP port on address $1.
sam_free_port() {
  python3 -c 'import socket, sys
s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}

# sam_wait_port HOST PORT SECONDS PID: until something listens there, or PID has died.
sam_wait_port() {
  local host=$1 port=$2 seconds=$3 pid=$4 i
  for ((i = 0; i < seconds * 10; i++)); do
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# The Lambda Invoke endpoint the function's /async calls, unless AWS_ENDPOINT_URL_LAMBDA is set:
# local-lambda (crates/local-lambda) on the bridge's address, which answers an Event invocation at once
# and delivers it, with Lambda's retries, to `sam local start-lambda` on loopback (which alone
# would run the task before answering). start-lambda's container starts at once (EAGER), so a
# delivery does not wait for one. Sets SAM_START_LAMBDA to start-lambda's URL.
sam_invoke_endpoint() {
  if [ -n "${AWS_ENDPOINT_URL_LAMBDA:-}" ]; then return 0; fi
  local port fd
  port=$(sam_free_port 127.0.0.1)
  SAM_START_LAMBDA="http://127.0.0.1:$port"
  SAM_LOCAL_LAMBDA_LOG="$SAM_LOCAL_DIR/local-lambda.$$.log"
  sam_on_exit "rm -f '$SAM_LOCAL_LAMBDA_LOG'"
  exec {fd}< <(exec "$SAM_BIN/local-lambda" --address "$SAM_BRIDGE_IP" --port 0 \
    --target "$SAM_START_LAMBDA" --target-function "$SAM_FUNCTION" \
    --queue-name async-api-task-failures \
    2> >(tee "$SAM_LOCAL_LAMBDA_LOG" >&2))
  local pid=$! invoke_port
  sam_on_exit "sam_kill $pid"
  read -r -t 20 invoke_port <&"$fd" || sam_die "local-lambda did not start"
  export AWS_ENDPOINT_URL_LAMBDA="http://$SAM_BRIDGE_IP:$invoke_port"

  sam_env_vars
  sam_container_options
  sam_background "$SAM_LOCAL_DIR/start-lambda.log" local start-lambda "${SAM_OPTIONS[@]}" \
    --host 127.0.0.1 --port "$port" --warm-containers EAGER
  pid=$SAM_PID
  # INT, as Ctrl-C: SAM then removes its warm container itself.
  sam_on_exit "sam_kill $pid INT 30"
  sam_timed "start-lambda ready" sam_wait_port 127.0.0.1 "$port" 180 "$pid" ||
    sam_die "sam local start-lambda did not start: see $SAM_LOCAL_DIR/start-lambda.log"
  sam_log "Invoke endpoint: $AWS_ENDPOINT_URL_LAMBDA (local-lambda, delivering to sam local start-lambda)"
}

# sam_wait_deliveries SECONDS: until every event local-lambda queued has ended (succeeded, or
# its destination record was handled), so that stopping does not cut a task short.
sam_wait_deliveries() {
  [ -n "${SAM_LOCAL_LAMBDA_LOG:-}" ] || return 0
  local seconds=$1 i queued ended
  for ((i = 0; i < seconds * 10; i++)); do
    queued=$(grep -c ' queued for ' "$SAM_LOCAL_LAMBDA_LOG" || true)
    ended=$(grep -cE 'attempt [0-9]+ succeeded in|deleted from the queue|given up after [0-9]+ receives' \
      "$SAM_LOCAL_LAMBDA_LOG" || true)
    [ "$ended" -ge "$queued" ] && return 0
    sleep 0.1
  done
  sam_log "events still being delivered after $seconds s"
  return 1
}

# sam_task_status RESULT_FILE: when the result is a 202 of /async, prints GET /tasks/{id}'s
# answer body, asked of the function through start-lambda; prints nothing otherwise.
sam_task_status() {
  [ -n "${SAM_START_LAMBDA:-}" ] || return 0
  "$PWD/.venv/bin/python" - "$1" events/http-get-task.json \
    "$SAM_START_LAMBDA/2015-03-31/functions/$SAM_FUNCTION/invocations" <<'PY'
import json
import sys
import urllib.request

result_file, get_task_file, invoke_url = sys.argv[1:]
try:
    with open(result_file) as f:
        result = json.load(f)
    task_id = json.loads(result["body"])["task_id"]
except (ValueError, KeyError, TypeError):
    sys.exit(0)
if result.get("statusCode") != 202:
    sys.exit(0)
with open(get_task_file) as f:
    event = json.load(f)
path = f"/tasks/{task_id}"
event["rawPath"] = event["requestContext"]["http"]["path"] = path
request = urllib.request.Request(invoke_url, data=json.dumps(event).encode(), method="POST")
with urllib.request.urlopen(request, timeout=120) as answer:
    print(json.loads(answer.read())["body"])
PY
}

# Everything up to a runnable `sam local` command.
sam_prepare() {
  sam_docker_up
  sam_timed "arm64 emulation" sam_arm64_emulation
  sam_base_image
  sam_local_template
  : "${CORS_ALLOWED_ORIGINS:=*}"
  export CORS_ALLOWED_ORIGINS
  sam_timed "build seed and local-lambda" \
    cargo build --quiet -p async-api --example seed -p local-lambda --bin local-lambda
  # Run as built, not through `cargo run`, which would rebuild them after any edit meanwhile.
  SAM_BIN="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug"
  SAM_EXAMPLES="$SAM_BIN/examples"
  sam_dynalite
  sam_invoke_endpoint
  sam_env_vars
  sam_container_options
}
