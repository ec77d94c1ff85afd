# identifiers/greeting.py
NAME = "greeting"  # the protocol name routes use (default: the file's stem)


def identify(data: bytes):
    """All bytes the client sent so far. Return a dict of fields when it matches (may be
    empty), None when it cannot be this protocol, or an int: how many bytes in total it needs
    before it can decide."""
    if len(data) < 6:
        return 6 if b"HELLO ".startswith(data) else None
    if not data.startswith(b"HELLO "):
        return None
    return {"who": data[6:].split(b"\r\n")[0].decode("ascii", "replace")}


SAMPLES = {"match": [b"HELLO bob\r\n"], "no_match": [b"GET / HTTP/1.1\r\n"]}
