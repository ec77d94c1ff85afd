#!/usr/bin/env python3
"""Record the first bytes real clients send, into ``tests/corpus/<protocol>/<name>.bin``.

For each recording a tiny TCP listener is opened on 127.0.0.1 (never any other address), the
real client is started against it, and everything the client sends is captured until it pauses
for 300 ms, closes, or 64 KiB have arrived. The listener never answers, so what is captured is
exactly the client's first flight -- what Passthru sees before it must decide.

Where no real client exists in Debian, the bytes are built by a documented generator
(``SPEC`` below): from a library's own encoder where one is packaged ("library-built") or from
the specification ("spec-built"). Those files are named ``lib-*.bin`` and ``spec-*.bin``.

    python tests/corpus/record.py                # record everything whose client is installed
    python tests/corpus/record.py --only redis,dns --out /tmp/corpus
    python tests/corpus/record.py --list         # what would be recorded, and with what

The test suite imports ``RECORDINGS`` and ``capture`` to re-record the cheap clients live.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
CORPUS = Path(__file__).resolve().parent
IDLE = 0.3
MAX_CAPTURE = 64 * 1024
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python3-* client libraries live there


@dataclass(frozen=True)
class Recording:
    """One real client run: ``command`` is formatted with ``port``, ``dir`` (a scratch
    directory prepared by ``setup``) and ``extra`` (a second free loopback port)."""

    protocol: str
    name: str
    command: tuple[str, ...]
    needs: tuple[str, ...] = ()  # executables (or python modules, as "py:module") required
    setup: Callable[[Path, int, int], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 15.0
    cheap: bool = False  # fast, common clients re-recorded live by the test suite


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def available(recording: Recording) -> bool:
    for need in recording.needs or (recording.command[0],):
        if need.startswith("py:"):
            probe = subprocess.run([SYSTEM_PYTHON, "-c", f"import {need[3:]}"], capture_output=True, check=False)
            if probe.returncode:
                return False
        elif shutil.which(need) is None:
            return False
    return True


def receive(listener: socket.socket, deadline: float, out: bytearray) -> None:
    """Accept one connection and read its first flight (until a pause, a close or the cap)."""
    listener.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        conn, _ = listener.accept()
    except OSError:
        return
    with conn:
        conn.setblocking(False)
        while len(out) < MAX_CAPTURE and time.monotonic() < deadline:
            ready, _, _ = select.select([conn], [], [], IDLE if out else max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                chunk = conn.recv(MAX_CAPTURE - len(out))
            except BlockingIOError:
                continue
            except OSError:
                break
            if not chunk:
                break
            out.extend(chunk)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(2)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(2)


def substitute(text: str, values: dict[str, str]) -> str:
    """Replace the ``{port}``-style placeholders (plain replacement: client sources have braces)."""
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def capture(recording: Recording) -> bytes:
    """Run the client of ``recording`` against a fresh loopback listener; its first bytes."""
    with tempfile.TemporaryDirectory(prefix="passthru-corpus-") as scratch, socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        extra = free_port()
        directory = Path(scratch)
        if recording.setup is not None:
            recording.setup(directory, port, extra)
        values = {"{port}": str(port), "{dir}": scratch, "{extra}": str(extra), "{python}": SYSTEM_PYTHON}
        argv = [substitute(part, values) for part in recording.command]
        env = {**os.environ, "HOME": scratch, **{k: substitute(v, values) for k, v in recording.env.items()}}
        data = bytearray()
        deadline = time.monotonic() + recording.timeout
        reader = threading.Thread(target=receive, args=(listener, deadline, data), daemon=True)
        reader.start()
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=scratch,
            start_new_session=True,
        )
        try:
            reader.join(recording.timeout + 1)
        finally:
            stop(process)
            cleanup = directory / "cleanup.sh"
            if cleanup.exists():
                subprocess.run(["sh", str(cleanup)], capture_output=True, check=False, timeout=20, env=env)
        return bytes(data)


# ----------------------------------------------------------------------------- client setups
def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def run(*argv: str, cwd: Path | None = None) -> None:
    subprocess.run(argv, check=True, capture_output=True, cwd=cwd, timeout=60)


def openvpn_pki(directory: Path, port: int, extra: int) -> None:
    """A throw-away CA and client certificate (the hard reset is sent before they are used)."""
    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=ca",
        "-keyout",
        str(directory / "ca.key"),
        "-out",
        str(directory / "ca.crt"),
    )
    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=client",
        "-keyout",
        str(directory / "client.key"),
        "-out",
        str(directory / "client.crt"),
    )
    run("openvpn", "--genkey", "secret", str(directory / "ta.key"))
    run("openvpn", "--genkey", "tls-crypt-v2-server", str(directory / "v2server.key"))
    run(
        "openvpn",
        "--genkey",
        "tls-crypt-v2-client",
        str(directory / "v2client.key"),
        "--tls-crypt-v2",
        str(directory / "v2server.key"),
    )


def tinc_config(directory: Path, port: int, extra: int) -> None:
    net = directory / "net"
    write(net / "tinc.conf", "Name = alice\nConnectTo = bob\nDeviceType = dummy\n")
    run("openssl", "genrsa", "-traditional", "-out", str(net / "rsa_key.priv"), "2048")
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(net / "rsa_key.priv"), "-RSAPublicKey_out"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    write(net / "hosts" / "alice", public)
    write(net / "hosts" / "bob", f"Address = {LOOPBACK}\nPort = {port}\n" + public)


def haproxy_config(version: str) -> Callable[[Path, int, int], None]:
    def setup(directory: Path, port: int, extra: int) -> None:
        write(
            directory / "haproxy.cfg",
            f"""
            defaults
                mode tcp
                timeout connect 2s
                timeout client 5s
                timeout server 5s
            frontend in
                bind {LOOPBACK}:{extra}
                default_backend out
            backend out
                server recorder {LOOPBACK}:{port} {version}
            """,
        )
        write(
            directory / "client.sh",
            f"""
            haproxy -db -f {directory}/haproxy.cfg &
            for i in 1 2 3 4 5 6 7 8 9 10; do
                curl -s -m 3 -H 'Host: app.example.test' http://{LOOPBACK}:{extra}/status && break
                sleep 0.2
            done
            wait
            """,
        )

    return setup


def git_repository(directory: Path, port: int, extra: int) -> None:
    run("git", "init", "-q", "-b", "main", str(directory / "work"))
    write(directory / "work" / "README", "corpus\n")
    run(
        "git",
        "-C",
        str(directory / "work"),
        "-c",
        "user.email=a@example.test",
        "-c",
        "user.name=a",
        "commit",
        "-qam",
        "x",
        "--allow-empty",
    )
    run("git", "-C", str(directory / "work"), "add", "README")


def mosquitto_bridge(directory: Path, port: int, extra: int) -> None:
    """A mosquitto broker on a second loopback port bridging to the recorder (try_private on,
    as by default: the CONNECT's protocol level carries the bridge bit 0x80)."""
    write(
        directory / "mosquitto.conf",
        f"""
        listener {extra} {LOOPBACK}
        persistence false
        connection uplink
        address {LOOPBACK}:{port}
        remote_clientid bridge-1
        topic sensors/# out 0
        bridge_protocol_version mqttv311
        try_private true
        """,
    )


def nsupdate_script(directory: Path, port: int, extra: int) -> None:
    """An RFC 2136 UPDATE adding one A record; ``server`` and ``zone`` given, so nsupdate sends
    the UPDATE itself (no SOA lookup first)."""
    write(
        directory / "update.txt",
        f"""
        server {LOOPBACK} {port}
        zone example.test
        update add host1.example.test 300 A 192.0.2.10
        send
        """,
    )


def adb_cleanup(directory: Path, port: int, extra: int) -> None:
    write(directory / "cleanup.sh", f"ANDROID_ADB_SERVER_PORT={extra} adb kill-server\n")


def python_client(source: str) -> tuple[str, ...]:
    """Run a client written with a Debian-packaged library under the system python; the
    listener's port is its ``sys.argv[1]`` (the source is not formatted)."""
    return ("{python}", "-c", "import sys\nPORT = int(sys.argv[1])\n" + textwrap.dedent(source), "{port}")


def bittorrent_client(encryption: int) -> tuple[str, ...]:
    """libtorrent-rasterbar connecting to one peer: ``encryption`` is its enc_policy
    (0 forced: an MSE handshake, random-looking by design; 2 disabled: the plain handshake)."""
    return (*BITTORRENT_SOURCE, str(encryption))


BITTORRENT_SOURCE = python_client("""
    import sys, time, libtorrent as lt
    fs = lt.file_storage(); fs.add_file("corpus.bin", 16384)
    t = lt.create_torrent(fs); t.set_hash(0, b"\\x11" * 20)
    info = lt.torrent_info(lt.bencode(t.generate()))
    s = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
                    "enable_upnp": False, "enable_natpmp": False, "out_enc_policy": int(sys.argv[2]),
                    "in_enc_policy": int(sys.argv[2])})
    h = s.add_torrent({"ti": info, "save_path": "."})
    h.connect_peer(("127.0.0.1", PORT))
    time.sleep(5)
    """)

MONGO_CLIENT = python_client("""
    import pymongo
    client = pymongo.MongoClient("mongodb://127.0.0.1:%d/?directConnection=true" % PORT,
                                 serverSelectionTimeoutMS=3000, appname="corpus")
    try:
        client.admin.command("ping")
    except Exception:
        pass
    """)

STOMP_CLIENT = python_client("""
    import stomp
    conn = stomp.Connection([("127.0.0.1", PORT)], vhost="broker.example.test")
    try:
        conn.connect("alice", "secret", wait=True)
    except Exception:
        pass
    """)

STOMP10_CLIENT = python_client("""
    import stomp
    conn = stomp.Connection10([("127.0.0.1", PORT)])
    try:
        conn.connect("alice", "secret", wait=True)
    except Exception:
        pass
    """)

XMPP_CLIENT = python_client("""
    import asyncio, slixmpp
    client = slixmpp.ClientXMPP("alice@chat.example.test/corpus", "secret")
    client.connect(("127.0.0.1", PORT), force_starttls=False, disable_starttls=True)
    client.loop.run_until_complete(asyncio.sleep(5))
    """)

AMQP10_CLIENT = python_client("""
    from proton.utils import BlockingConnection
    try:
        BlockingConnection("amqp://alice:secret@127.0.0.1:%d" % PORT, timeout=4)
    except Exception:
        pass
    """)

AMQP10_ANONYMOUS_CLIENT = python_client("""
    from proton.utils import BlockingConnection
    try:
        BlockingConnection("amqp://127.0.0.1:%d" % PORT, timeout=4, sasl_enabled=False)
    except Exception:
        pass
    """)


def bitcoin_client(network: str) -> tuple[str, ...]:
    return python_client(f"""
        import socket, bitcoin
        from bitcoin.messages import msg_version
        bitcoin.SelectParams("{network}")
        message = msg_version()
        message.strSubVer = b"/python-bitcoinlib:0.11.2/"
        with socket.create_connection(("127.0.0.1", PORT)) as s:
            s.sendall(message.to_bytes())
            s.recv(1)
        """)


OPENVPN = (
    "openvpn",
    "--client",
    "--proto",
    "tcp-client",
    "--remote",
    LOOPBACK,
    "{port}",
    "--dev",
    "null",
    "--nobind",
    "--ca",
    "{dir}/ca.crt",
    "--cert",
    "{dir}/client.crt",
    "--key",
    "{dir}/client.key",
    "--connect-retry-max",
    "1",
    "--verb",
    "0",
)
CURL = ("curl", "-s", "-m", "5")
PSQL = ("psql", "-w", "-c", "select 1")
RECORDINGS: tuple[Recording, ...] = (
    # ---- ssh
    Recording(
        "ssh",
        "openssh",
        (
            "ssh",
            "-p",
            "{port}",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "alice@127.0.0.1",
            "true",
        ),
        cheap=True,
    ),
    # ---- tls
    Recording(
        "tls",
        "openssl-sni-alpn",
        (
            "openssl",
            "s_client",
            "-connect",
            "127.0.0.1:{port}",
            "-servername",
            "www.example.test",
            "-alpn",
            "h2,http/1.1",
        ),
        cheap=True,
    ),
    Recording(
        "tls",
        "openssl-tls12",
        ("openssl", "s_client", "-connect", "127.0.0.1:{port}", "-tls1_2", "-servername", "legacy.example.test"),
    ),
    Recording(
        "tls",
        "curl-https",
        (*CURL, "-k", "--resolve", "www.example.test:{port}:127.0.0.1", "https://www.example.test:{port}/"),
        cheap=True,
    ),
    # ---- http
    Recording(
        "http", "curl-get", (*CURL, "-H", "Host: www.example.test", "http://127.0.0.1:{port}/index.html"), cheap=True
    ),
    Recording("http", "curl-post", (*CURL, "-d", "a=1", "http://127.0.0.1:{port}/form")),
    Recording("http", "curl-connect", (*CURL, "-p", "-x", "http://127.0.0.1:{port}", "https://upstream.example.test/")),
    Recording("http", "curl-absolute", (*CURL, "-x", "http://127.0.0.1:{port}", "http://upstream.example.test/a?b=c")),
    Recording("http", "curl-upgrade-h2c", (*CURL, "--http2", "http://127.0.0.1:{port}/")),
    # HTTP/1.x as origin servers accept it: header lines curl sends verbatim from -H
    Recording(
        "http",
        "curl-obs-fold",
        (
            *CURL,
            "-H",
            "Host: fold.example.test",
            "-H",
            "X-Fold: one\r\n\ttwo\r\n three",
            "http://127.0.0.1:{port}/path",
        ),
    ),
    Recording(
        "http",
        "curl-method-spaces",
        (*CURL, "-X", "GET ", "-H", "Host: spaces.example.test", "http://127.0.0.1:{port}/index.html"),
    ),
    Recording(
        "http",
        "curl-no-colon-line",
        (*CURL, "-H", "Host: www.example.test", "-H", "X-Note: first\r\nno colon here", "http://127.0.0.1:{port}/"),
    ),
    Recording(
        "http",
        "curl-odd-value",
        (*CURL, "-H", "Host: www.example.test", "-H", "X-Odd: \x01\x7f\udcff\udcfe", "http://127.0.0.1:{port}/"),
    ),
    Recording("http", "curl-odd-host", (*CURL, "-H", "Host: bad\x01host.example.test", "http://127.0.0.1:{port}/")),
    Recording(
        "http", "curl-bare-lf-header", (*CURL, "-H", "Host: lf.example.test\nX-Bare: lf", "http://127.0.0.1:{port}/")
    ),
    Recording(
        "http",
        "curl-many-headers",
        (
            *CURL,
            "-H",
            "Host: many.example.test",
            *(a for i in range(120) for a in ("-H", f"X-Header-{i}: {i}")),
            "http://127.0.0.1:{port}/",
        ),
    ),
    Recording(
        "http",
        "bash-bare-lf",
        (
            "bash",
            "-c",
            "printf 'GET /status HTTP/1.0\\nHost: lf.example.test\\n\\n' > /dev/tcp/127.0.0.1/{port}; sleep 1",
        ),
    ),
    # ---- h2c
    Recording(
        "h2c", "curl-prior-knowledge", (*CURL, "--http2-prior-knowledge", "http://127.0.0.1:{port}/"), cheap=True
    ),
    # ---- socks
    Recording("socks4", "curl-socks4", (*CURL, "--socks4", "127.0.0.1:{port}", "http://127.0.0.1:8080/")),
    # the proxy (the recorder) never answers, so 192.0.2.10 (TEST-NET-1) is only named, never contacted
    Recording("socks4", "curl-socks4-testnet", (*CURL, "--socks4", "127.0.0.1:{port}", "http://192.0.2.10:8080/")),
    Recording(
        "socks4", "curl-socks4a", (*CURL, "--socks4a", "127.0.0.1:{port}", "http://service.example.test/"), cheap=True
    ),
    Recording(
        "socks4", "curl-socks4a-user", (*CURL, "-x", "socks4a://alice@127.0.0.1:{port}", "http://service.example.test/")
    ),
    Recording("socks5", "curl-socks5", (*CURL, "--socks5", "127.0.0.1:{port}", "http://127.0.0.1:8080/"), cheap=True),
    Recording(
        "socks5",
        "curl-socks5-password",
        (*CURL, "-x", "socks5h://alice:secret@127.0.0.1:{port}", "http://service.example.test/"),
        cheap=True,
    ),
    # ---- proxy
    Recording(
        "proxy",
        "curl-haproxy-v1",
        (*CURL, "--haproxy-protocol", "-H", "Host: app.example.test", "http://127.0.0.1:{port}/"),
        cheap=True,
    ),
    Recording(
        "proxy",
        "haproxy-send-proxy-v2",
        ("sh", "{dir}/client.sh"),
        needs=("haproxy", "curl"),
        setup=haproxy_config("send-proxy-v2"),
    ),
    Recording(
        "proxy",
        "haproxy-send-proxy",
        ("sh", "{dir}/client.sh"),
        needs=("haproxy", "curl"),
        setup=haproxy_config("send-proxy"),
    ),
    # ---- openvpn
    Recording("openvpn", "openvpn-plain", OPENVPN, setup=openvpn_pki),
    Recording("openvpn", "openvpn-tls-auth", (*OPENVPN, "--tls-auth", "{dir}/ta.key", "1"), setup=openvpn_pki),
    Recording(
        "openvpn",
        "openvpn-tls-auth-sha256",
        (*OPENVPN, "--tls-auth", "{dir}/ta.key", "1", "--auth", "SHA256"),
        setup=openvpn_pki,
    ),
    Recording(
        "openvpn",
        "openvpn-tls-auth-md5-sha1",
        (*OPENVPN, "--tls-auth", "{dir}/ta.key", "1", "--auth", "MD5-SHA1"),
        setup=openvpn_pki,
    ),
    Recording("openvpn", "openvpn-tls-crypt", (*OPENVPN, "--tls-crypt", "{dir}/ta.key"), setup=openvpn_pki),
    Recording("openvpn", "openvpn-tls-crypt-v2", (*OPENVPN, "--tls-crypt-v2", "{dir}/v2client.key"), setup=openvpn_pki),
    # ---- tinc
    Recording(
        "tinc",
        "tincd-1.0",
        ("tincd", "-c", "{dir}/net", "-D", "--pidfile={dir}/tinc.pid", "--logfile={dir}/tinc.log"),
        setup=tinc_config,
    ),
    # ---- xmpp
    Recording("xmpp", "slixmpp", XMPP_CLIENT, needs=("py:slixmpp",)),
    Recording(
        "xmpp",
        "sendxmpp",
        (
            "sh",
            "-c",
            "echo hi | sendxmpp -u alice -p secret -j 127.0.0.1:{port} -o chat.example.test bob@chat.example.test",
        ),
        needs=("sendxmpp",),
    ),
    # ---- rdp
    Recording(
        "rdp",
        "xfreerdp",
        ("xvfb-run", "-a", "xfreerdp", "/v:127.0.0.1:{port}", "/u:alice", "/cert:ignore"),
        needs=("xvfb-run", "xfreerdp"),
    ),
    Recording(
        "rdp",
        "xfreerdp-load-balance",
        (
            "xvfb-run",
            "-a",
            "xfreerdp",
            "/v:127.0.0.1:{port}",
            "/u:carol",
            "/load-balance-info:tsv://MS Terminal Services Plugin.1.Sales",
            "/cert:ignore",
        ),
        needs=("xvfb-run", "xfreerdp"),
    ),
    Recording(
        "rdp",
        "xfreerdp-tls",
        ("xvfb-run", "-a", "xfreerdp", "/v:127.0.0.1:{port}", "/u:bob", "/sec:tls", "/cert:ignore"),
        needs=("xvfb-run", "xfreerdp"),
    ),
    # ---- postgres
    Recording(
        "postgres",
        "psql-startup",
        PSQL,
        needs=("psql",),
        cheap=True,
        env={
            "PGHOST": "127.0.0.1",
            "PGPORT": "{port}",
            "PGUSER": "alice",
            "PGDATABASE": "shop",
            "PGSSLMODE": "disable",
            "PGGSSENCMODE": "disable",
        },
    ),
    Recording(
        "postgres",
        "psql-sslrequest",
        PSQL,
        needs=("psql",),
        cheap=True,
        env={
            "PGHOST": "127.0.0.1",
            "PGPORT": "{port}",
            "PGUSER": "alice",
            "PGSSLMODE": "require",
            "PGGSSENCMODE": "disable",
        },
    ),
    # ---- redis
    Recording("redis", "redis-cli-ping", ("redis-cli", "-h", "127.0.0.1", "-p", "{port}", "PING"), cheap=True),
    Recording("redis", "redis-cli-resp3", ("redis-cli", "-3", "-h", "127.0.0.1", "-p", "{port}", "PING"), cheap=True),
    Recording(
        "redis",
        "redis-cli-auth",
        ("redis-cli", "-h", "127.0.0.1", "-p", "{port}", "-a", "secret", "--no-auth-warning", "GET", "k"),
    ),
    # ---- mqtt
    Recording(
        "mqtt",
        "mosquitto-v311",
        ("mosquitto_pub", "-h", "127.0.0.1", "-p", "{port}", "-V", "mqttv311", "-i", "sensor-1", "-t", "t", "-m", "m"),
        cheap=True,
    ),
    Recording(
        "mqtt",
        "mosquitto-v5",
        ("mosquitto_pub", "-h", "127.0.0.1", "-p", "{port}", "-V", "mqttv5", "-i", "sensor-5", "-t", "t", "-m", "m"),
        cheap=True,
    ),
    Recording(
        "mqtt",
        "mosquitto-v31-auth-will",
        (
            "mosquitto_pub",
            "-h",
            "127.0.0.1",
            "-p",
            "{port}",
            "-V",
            "mqttv31",
            "-i",
            "sensor-31",
            "-u",
            "alice",
            "-P",
            "secret",
            "--will-topic",
            "w",
            "--will-payload",
            "gone",
            "-t",
            "t",
            "-m",
            "m",
        ),
    ),
    Recording(
        "mqtt",
        "mosquitto-bridge",
        ("mosquitto", "-c", "{dir}/mosquitto.conf"),
        needs=("mosquitto",),
        setup=mosquitto_bridge,
    ),
    # ---- dns
    Recording(
        "dns",
        "dig-tcp-a",
        ("dig", "+tcp", "+tries=1", "+time=2", "@127.0.0.1", "-p", "{port}", "www.example.test", "A"),
        cheap=True,
    ),
    Recording(
        "dns",
        "dig-tcp-aaaa-nocookie",
        ("dig", "+tcp", "+nocookie", "+tries=1", "+time=2", "@127.0.0.1", "-p", "{port}", "mail.example.test", "AAAA"),
    ),
    Recording("dns", "dig-axfr", ("dig", "+tries=1", "+time=2", "@127.0.0.1", "-p", "{port}", "example.test", "AXFR")),
    Recording(
        "dns",
        "nsupdate-add",
        ("sh", "-c", "nsupdate -v -t 3 < {dir}/update.txt"),
        needs=("nsupdate",),
        setup=nsupdate_script,
        cheap=True,
    ),
    Recording(
        "dns",
        "dig-header-only",
        ("dig", "+tcp", "+header-only", "+tries=1", "+time=2", "@127.0.0.1", "-p", "{port}"),
        cheap=True,
    ),
    Recording(
        "dns",
        "dig-notify",
        ("dig", "+tcp", "+tries=1", "+time=2", "+opcode=notify", "@127.0.0.1", "-p", "{port}", "example.test", "SOA"),
        cheap=True,
    ),
    # ---- bittorrent
    Recording("bittorrent", "libtorrent", bittorrent_client(2), needs=("py:libtorrent",)),
    # encrypted BitTorrent (MSE) is built to look random: kept as a sample nothing may claim
    Recording("unidentifiable", "libtorrent-mse", bittorrent_client(0), needs=("py:libtorrent",)),
    # ---- git
    Recording("git", "ls-remote-v2", ("git", "ls-remote", "git://127.0.0.1:{port}/project.git"), cheap=True),
    Recording(
        "git",
        "ls-remote-v0",
        ("git", "-c", "protocol.version=0", "ls-remote", "git://127.0.0.1:{port}/~alice/tools.git"),
        cheap=True,
    ),
    Recording("git", "archive", ("git", "archive", "--remote=git://127.0.0.1:{port}/project.git", "HEAD")),
    Recording(
        "git",
        "push",
        ("git", "-C", "{dir}/work", "push", "git://127.0.0.1:{port}/project.git", "main"),
        setup=git_repository,
    ),
    # ---- rtsp
    Recording("rtsp", "ffprobe", ("ffprobe", "-v", "quiet", "rtsp://127.0.0.1:{port}/live/stream")),
    Recording(
        "rtsp",
        "ffprobe-tcp",
        ("ffprobe", "-v", "quiet", "-rtsp_transport", "tcp", "rtsp://alice:secret@127.0.0.1:{port}/cam1"),
    ),
    Recording("rtsp", "curl-options-fold", (*CURL, "-H", "X-Fold: one\r\n two", "rtsp://127.0.0.1:{port}/cam")),
    # ---- smb
    Recording("smb", "smbclient", ("smbclient", "-L", "//127.0.0.1", "-p", "{port}", "-N")),
    Recording(
        "smb",
        "smbclient-nt1",
        (
            "smbclient",
            "-L",
            "//127.0.0.1",
            "-p",
            "{port}",
            "-N",
            "--option",
            "client min protocol=NT1",
            "--option",
            "client max protocol=NT1",
        ),
    ),
    # ---- mongodb
    Recording("mongodb", "pymongo-handshake", MONGO_CLIENT, needs=("py:pymongo",)),
    # ---- amqp
    Recording("amqp", "amqp-publish-091", ("amqp-publish", "--url", "amqp://127.0.0.1:{port}", "-r", "k", "-b", "x")),
    Recording("amqp", "proton-10-sasl", AMQP10_CLIENT, needs=("py:proton",)),
    Recording("amqp", "proton-10-plain", AMQP10_ANONYMOUS_CLIENT, needs=("py:proton",)),
    # ---- memcached
    Recording("memcached", "memcstat", ("memcstat", "--servers=127.0.0.1:{port}")),
    Recording("memcached", "memccat", ("memccat", "--servers=127.0.0.1:{port}", "session:42")),
    Recording("memcached", "memcflush", ("memcflush", "--servers=127.0.0.1:{port}")),
    Recording("memcached", "memccat-binary", ("memccat", "--binary", "--servers=127.0.0.1:{port}", "session:42")),
    Recording("memcached", "memcstat-binary", ("memcstat", "--binary", "--servers=127.0.0.1:{port}")),
    # ---- stomp
    Recording("stomp", "stomp-py-12", STOMP_CLIENT, needs=("py:stomp",)),
    Recording("stomp", "stomp-py-10", STOMP10_CLIENT, needs=("py:stomp",)),
    # ---- bitcoin (python-bitcoinlib is a library, not a node: its encoder, sent over a socket)
    Recording("bitcoin", "lib-bitcoinlib-mainnet", bitcoin_client("mainnet"), needs=("py:bitcoin",)),
    Recording("bitcoin", "lib-bitcoinlib-regtest", bitcoin_client("regtest"), needs=("py:bitcoin",)),
    # ---- irc
    Recording("irc", "ii", ("ii", "-s", "127.0.0.1", "-p", "{port}", "-n", "alice", "-i", "{dir}/irc")),
    Recording(
        "irc",
        "weechat",
        (
            "weechat-headless",
            "--dir",
            "{dir}/weechat",
            "-r",
            "/set irc.server_default.nicks carol;/set irc.server_default.username carol;"
            "/server add corpus 127.0.0.1/{port} -notls;/connect corpus",
        ),
        needs=("weechat-headless",),
    ),
    # ---- syslog
    Recording(
        "syslog",
        "logger-rfc5424",
        ("logger", "--tcp", "-n", "127.0.0.1", "-P", "{port}", "--rfc5424", "-t", "corpus", "hello 5424"),
        cheap=True,
    ),
    Recording(
        "syslog",
        "logger-rfc3164",
        ("logger", "--tcp", "-n", "127.0.0.1", "-P", "{port}", "--rfc3164", "-t", "corpus", "hello 3164"),
        cheap=True,
    ),
    Recording(
        "syslog",
        "logger-octet-count",
        ("logger", "--tcp", "-n", "127.0.0.1", "-P", "{port}", "--rfc5424", "--octet-count", "-t", "corpus", "counted"),
        cheap=True,
    ),
    # ---- adb
    Recording(
        "adb",
        "adb-connect",
        ("adb", "connect", "127.0.0.1:{port}"),
        setup=adb_cleanup,
        env={"ANDROID_ADB_SERVER_PORT": "{extra}"},
    ),
)


# ------------------------------------------------------------------ spec- and library-built
def sslv2_compat_hello() -> bytes:
    """An SSL 2.0-format CLIENT-HELLO offering TLS 1.0 (RFC 5246 appendix E.2), as old
    clients (OpenSSL before 1.1, Java 6) sent it: 3 cipher specs, no session id, 16-byte challenge."""
    specs = bytes.fromhex("010080") + bytes.fromhex("00002f") + bytes.fromhex("000035")
    challenge = bytes(range(16))
    body = b"\x01\x03\x01" + struct.pack(">HHH", len(specs), 0, len(challenge)) + specs + challenge
    return struct.pack(">H", 0x8000 | len(body)) + body


def postgres_cancel() -> bytes:
    """CancelRequest (libpq sends it on a new connection when a query is cancelled)."""
    return struct.pack(">III", 16, 80877102, 4242) + bytes.fromhex("1a2b3c4d")


def postgres_gssenc() -> bytes:
    """GSSENCRequest (libpq's gssencmode=prefer with a Kerberos ticket; none here)."""
    return struct.pack(">II", 8, 80877104)


def mongodb_op_msg() -> bytes:
    """OP_MSG ``hello`` as drivers send it after the handshake or with Stable API (pymongo 3.11
    only sends OP_QUERY for its handshake): built with pymongo's own OP_MSG encoder."""
    code = """
        import sys, bson
        from pymongo import message
        from bson.codec_options import DEFAULT_CODEC_OPTIONS
        data = message._op_msg(0, {"hello": 1}, "admin", None, False, False, DEFAULT_CODEC_OPTIONS)[1]
        sys.stdout.buffer.write(data)
        """
    return subprocess.run([SYSTEM_PYTHON, "-c", textwrap.dedent(code)], check=True, capture_output=True).stdout


def proxy_v2_local() -> bytes:
    """PROXY v2 LOCAL command (a proxy's health check), no addresses."""
    return b"\r\n\r\n\x00\r\nQUIT\n" + b"\x20\x00\x00\x00"


def tinc_11() -> bytes:
    """tinc 1.1's ID line (minor protocol version 7); Debian ships only tinc 1.0."""
    return b"0 node_b 17.7\n"


def bitcoin_testnet4() -> bytes:
    """A version message on testnet4 (magic 1c163f28), built from the P2P spec."""
    payload = struct.pack("<iQq", 70016, 0, 1_700_000_000) + bytes(26) + bytes(26) + struct.pack("<Q", 7)
    payload += b"\x10/Satoshi:28.0.0/" + struct.pack("<i", 0) + b"\x01"
    checksum = hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    return b"\x1c\x16\x3f\x28" + b"version".ljust(12, b"\0") + struct.pack("<I", len(payload)) + checksum + payload


def redis_inline() -> bytes:
    """An inline command, as typed into telnet/nc (redis-cli always sends RESP arrays)."""
    return b"PING\r\n"


def memcached_set() -> bytes:
    """A storage command with its data block (pymemcache/libmemcached send this form)."""
    return b"set session:42 0 300 5\r\nhello\r\n"


def rdp_request(line: bytes, requested: int | None = None) -> bytes:
    """A TPKT + X.224 Connection Request carrying ``line`` (CRLF included) and an RDP_NEG_REQ
    asking for ``requested`` protocols (MS-RDPBCGR 2.2.1.1; none when None)."""
    negotiation = b"" if requested is None else struct.pack("<BBHI", 1, 0, 8, requested)
    x224 = b"\xe0\x00\x00\x00\x00\x00" + line + negotiation
    return struct.pack(">BBH", 3, 0, 4 + 1 + len(x224)) + bytes([len(x224)]) + x224


def rdp_msts_token() -> bytes:
    """A load balancer's routing token (``Cookie: msts=IP.PORT.RESERVED``, [MSFT-SDLBTS]): the
    encoded address 192.0.2.20:3389 (as little-endian decimals), asking for TLS."""
    return rdp_request(b"Cookie: msts=335675584.15629.0000\r\n", 0x01)


def socks5_pipelined() -> bytes:
    """A no-auth greeting with its CONNECT request in the same write, as shadowsocks/v2ray-style
    local proxies send it (they do not wait for the method choice): www.example.test:443."""
    return b"\x05\x01\x00" + b"\x05\x01\x00\x03\x10www.example.test\x01\xbb"


def socks5_pipelined_password() -> bytes:
    """A greeting offering no-auth and user/password, the RFC 1929 sub-negotiation (alice/secret)
    and a CONNECT to 192.0.2.7:8080, all in one write."""
    return b"\x05\x02\x00\x02" + b"\x01\x05alice\x06secret" + b"\x05\x01\x00\x01\xc0\x00\x02\x07\x1f\x90"


def bson(document: dict[str, object]) -> bytes:
    """A minimal BSON encoder (strings, 32-bit ints, booleans, nested documents) for the
    legacy MongoDB samples: the packaged pymongo is not always installed."""
    body = b""
    for key, value in document.items():
        name = key.encode() + b"\0"
        if isinstance(value, bool):
            body += b"\x08" + name + bytes([value])
        elif isinstance(value, int):
            body += b"\x10" + name + struct.pack("<i", value)
        elif isinstance(value, str):
            text = value.encode() + b"\0"
            body += b"\x02" + name + struct.pack("<i", len(text)) + text
        else:
            body += b"\x03" + name + bson(value)  # type: ignore[arg-type]
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def mongodb_op_query(collection: str, flags: int, query: bytes, selector: bytes = b"") -> bytes:
    body = struct.pack("<I", flags) + collection.encode() + b"\0" + struct.pack("<ii", 0, -1) + query + selector
    return struct.pack("<iiii", 16 + len(body), 7, 0, 2004) + body


def mongodb_legacy_shell() -> bytes:
    """The OP_QUERY ``isMaster`` handshake of the 3.x mongo shell and legacy drivers, with its
    client metadata document (MongoDB handshake spec), on ``admin.$cmd``."""
    client = {
        "application": {"name": "MongoDB Shell"},
        "driver": {"name": "MongoDB Internal Client", "version": "3.6.8"},
        "os": {"type": "Linux", "name": "Ubuntu", "architecture": "x86_64", "version": "18.04"},
    }
    return mongodb_op_query("admin.$cmd", 0, bson({"isMaster": 1, "client": client}))


def mongodb_legacy_find() -> bytes:
    """A pre-3.2 driver's first request without a handshake: an OP_QUERY find on
    ``shop.orders`` with the ``$query`` wrapper, SlaveOk set, and a field selector."""
    query = bson({"$query": {"status": "open"}, "$orderby": {"created": -1}})
    return mongodb_op_query("shop.orders", 0x04, query, bson({"total": 1}))


def xmpp_server_stream() -> bytes:
    """A server-to-server stream (RFC 6120 4.7, XEP-0220 dialback) with an XML declaration and
    double quotes, as Prosody and ejabberd open it."""
    return (
        b'<?xml version="1.0"?>'
        b'<stream:stream xmlns="jabber:server" xmlns:stream="http://etherx.jabber.org/streams" '
        b'xmlns:db="jabber:server:dialback" from="a.example.test" to="b.example.test" version="1.0">'
    )


def xmpp_legacy_client() -> bytes:
    """A pre-RFC 3920 client stream (no ``version``), single quotes, XML declaration with an
    encoding, a newline before the stream tag."""
    return (
        b"<?xml version='1.0' encoding='UTF-8'?>\n"
        b"<stream:stream to='legacy.example.test' xmlns='jabber:client' "
        b"xmlns:stream='http://etherx.jabber.org/streams'>"
    )


def adb_26() -> bytes:
    """adb 26.0.0 rc1's opening: the empty message (24 bytes, magic 0xffffffff) it sent by
    mistake, then its CNXN (version 0x01000000 with the payload checksum, 256 KiB max payload)."""
    identity = b"host::features=shell_v2,cmd,stat_v2,ls_v2,fixed_push_mkdir\0"
    command = int.from_bytes(b"CNXN", "little")
    header = struct.pack("<6I", command, 0x01000000, 256 * 1024, len(identity), sum(identity), command ^ 0xFFFFFFFF)
    return bytes(20) + b"\xff\xff\xff\xff" + header + identity


def stomp_10_login() -> bytes:
    """A STOMP 1.0 CONNECT as 1.0-era clients (ActiveMQ's, old stomp.py) send it: login and
    passcode only, no ``accept-version`` or ``host``, ended by the frame's NUL."""
    return b"CONNECT\nlogin:alice\npasscode:secret\n\n\x00"


def irc_webirc() -> bytes:
    """A web gateway's opening (IRCv3 WEBIRC: password, gateway, the user's host and address),
    then the user's registration, as KiwiIRC sends it."""
    return b"WEBIRC secret kiwiirc client.example.test 192.0.2.44\r\nCAP LS 302\r\nNICK dave\r\nUSER dave 0 * :Dave\r\n"


def syslog_forward_format() -> bytes:
    """rsyslog's ``RSYSLOG_ForwardFormat`` over TCP: an RFC 3164 message with an RFC 3339
    timestamp (PRI 30: daemon.info)."""
    return b"<30>2024-05-01T12:00:00.123456+02:00 web1 nginx[42]: upstream recovered\n"


def amqp_0_10() -> bytes:
    """The AMQP 0-10 protocol header (Qpid C++ and qpid-python clients)."""
    return b"AMQP\x01\x01\x00\x0a"


def proxy_v2_tlvs() -> bytes:
    """PROXY v2 over IPv6 with the TLVs a TLS-terminating proxy adds (HAProxy's
    ``proxy-v2-options authority,unique-id``, ALPN): ALPN ``h2``, AUTHORITY (the SNI it saw),
    UNIQUE_ID and a NOOP padding TLV. [2001:db8::1]:51000 -> [2001:db8::2]:443."""
    addresses = (
        bytes.fromhex("20010db8000000000000000000000001")
        + bytes.fromhex("20010db8000000000000000000000002")
        + struct.pack(">HH", 51000, 443)
    )
    tlvs = b"".join(
        struct.pack(">BH", kind, len(value)) + value
        for kind, value in ((0x01, b"h2"), (0x02, b"app.example.test"), (0x05, b"req-42"), (0x04, bytes(3)))
    )
    body = addresses + tlvs
    return b"\r\n\r\n\x00\r\nQUIT\n" + b"\x21\x21" + struct.pack(">H", len(body)) + body


def proxy_v1_tcp6() -> bytes:
    """A PROXY v1 line for an IPv6 client ([2001:db8::1]:51000 -> [2001:db8::2]:443) and the
    start of what it relays."""
    return b"PROXY TCP6 2001:db8::1 2001:db8::2 51000 443\r\n\x16\x03\x01"


def syslog_cisco_asa() -> bytes:
    """Cisco ASA's TCP syslog with ``logging timestamp``: a year in the RFC 3164 timestamp,
    a colon and no host name (PRI 166: local4.info)."""
    return b"<166>Jan 01 2024 12:00:00: %ASA-6-302013: Built outbound TCP connection 1\n"


SPEC: dict[str, tuple[tuple[str, Callable[[], bytes]], ...]] = {
    "tls": (("spec-sslv2-compat-hello", sslv2_compat_hello),),
    "postgres": (("spec-cancel", postgres_cancel), ("spec-gssenc", postgres_gssenc)),
    "mongodb": (
        ("lib-pymongo-op-msg", mongodb_op_msg),
        ("spec-op-query-shell", mongodb_legacy_shell),
        ("spec-op-query-find", mongodb_legacy_find),
    ),
    "proxy": (("spec-v2-local", proxy_v2_local), ("spec-v2-tlvs", proxy_v2_tlvs), ("spec-v1-tcp6", proxy_v1_tcp6)),
    "tinc": (("spec-tinc-1.1", tinc_11),),
    "bitcoin": (("spec-testnet4", bitcoin_testnet4),),
    "redis": (("spec-inline-ping", redis_inline),),
    "memcached": (("spec-set", memcached_set),),
    "stomp": (("spec-stomp-10-login", stomp_10_login),),
    "irc": (("spec-webirc", irc_webirc),),
    "syslog": (("spec-forward-format", syslog_forward_format), ("spec-cisco-asa", syslog_cisco_asa)),
    "amqp": (("spec-amqp-0-10", amqp_0_10),),
    "rdp": (("spec-msts-token", rdp_msts_token),),
    "socks5": (("spec-pipelined-connect", socks5_pipelined), ("spec-pipelined-password", socks5_pipelined_password)),
    "xmpp": (("spec-server-dialback", xmpp_server_stream), ("spec-legacy-client", xmpp_legacy_client)),
    "adb": (("spec-adb-26-empty-message", adb_26),),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated protocols")
    parser.add_argument("--out", type=Path, default=CORPUS)
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--no-spec", action="store_true", help="skip spec- and library-built samples")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    failures = 0
    for recording in RECORDINGS:
        if only and recording.protocol not in only:
            continue
        if args.list:
            print(f"{recording.protocol}/{recording.name}: {' '.join(recording.command)[:100]}")
            continue
        if not available(recording):
            print(f"skip {recording.protocol}/{recording.name}: client not installed")
            continue
        data = capture(recording)
        if not data:
            print(f"FAIL {recording.protocol}/{recording.name}: the client sent nothing")
            failures += 1
            continue
        target = args.out / recording.protocol / f"{recording.name}.bin"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        print(f"ok   {recording.protocol}/{recording.name}: {len(data)} bytes")
    if not args.no_spec and not args.list:
        for protocol, builders in SPEC.items():
            if only and protocol not in only:
                continue
            for name, build in builders:
                target = args.out / protocol / f"{name}.bin"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(build())
                print(f"spec {protocol}/{name}: {target.stat().st_size} bytes")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
