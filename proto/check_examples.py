#!/usr/bin/python3
"""Checks the machine-readable parts of protocols vrouter.v1 (clients) and vrouter.video.v1
(video servers), both specified in proto/PROTOCOL.md.

    /usr/bin/python3 proto/check_examples.py [MESSAGES_FILE]

Always checks:
  * every proto/schemas/*.schema.json is a valid JSON Schema (draft 2020-12), with the expected
    $id, and there is exactly one schema per message type of either protocol (`error` is shared);
  * every proto/examples/valid/<type>.json validates against <type>.schema.json;
  * every proto/examples/invalid/<name>.json (client frames) is listed in invalid/index.json with
    an error code of the protocol, is rejected by the schemas, and a model of the router's client
    decoder (DecodeClientMessage, proto/codec.cc) predicts the same error code as the index;
  * likewise every proto/examples/video_invalid/<name>.json (video-server frames), against a model
    of DecodeVideoServerMessage (proto/video_server_codec.cc).

With MESSAGES_FILE (or "-" for stdin): also validates each non-empty line of the file, a JSON
message, against the schema named by its `type` (a message of either protocol, either direction).
A C++ test feeds it the router's real encoder output.

Exit status: 0 when everything passes, 1 on any failure, 2 on bad usage.

Needs only the `jsonschema` module (Debian 12: python3-jsonschema 4.10). Uses the `referencing`
registry when the installed jsonschema supports it, jsonschema.RefResolver otherwise.
"""

import json
import sys
from pathlib import Path

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

HERE = Path(__file__).resolve().parent
SCHEMAS = HERE / "schemas"
VALID = HERE / "examples" / "valid"
INVALID = HERE / "examples" / "invalid"
VIDEO_INVALID = HERE / "examples" / "video_invalid"
BASE_ID = "https://vrouter.dev/proto/v1/"

CLIENT_TYPES = ["hello", "join", "resume", "lookup", "watch", "unwatch", "report", "leave"]
ROUTER_TYPES = ["welcome", "assigned", "lookup_result", "watch_result", "ack", "moved", "left",
                "migrate", "goaway", "error"]
# vrouter.video.v1 (kVideoServerTypeNames, kRouterToVideoServerTypeNames in proto/video_server_codec.h).
VIDEO_SERVER_TYPES = ["register", "stats"]
ROUTER_TO_VIDEO_TYPES = ["registered", "state", "error"]  # `error` is the client protocol's
MESSAGE_TYPES = list(dict.fromkeys(CLIENT_TYPES + ROUTER_TYPES + VIDEO_SERVER_TYPES
                                   + ROUTER_TO_VIDEO_TYPES))
MAX_JSON_DEPTH = 8  # kMaxJsonDepth in proto/codec.h
MAX_SAFE_INTEGER = 9007199254740991  # kMaxSafeInteger in proto/messages.h


# ---- a validator that matches the router's codec more closely than plain draft 2020-12 ----

def _is_strict_integer(checker, instance):
    # The codec accepts only integer literals: 1.0 and 1e3 are doubles to it, and rejected.
    return isinstance(instance, int) and not isinstance(instance, bool)


def _max_utf8_bytes(validator, limit, instance, schema):
    # String limits in the protocol are in UTF-8 bytes; maxLength counts code points.
    if isinstance(instance, str) and len(instance.encode("utf-8")) > limit:
        yield ValidationError(f"{instance[:40]!r}... is longer than {limit} UTF-8 bytes")


StrictValidator = jsonschema.validators.extend(
    Draft202012Validator,
    validators={"x-maxUtf8Bytes": _max_utf8_bytes},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_strict_integer),
)


class Failures:
    def __init__(self):
        self.items = []

    def add(self, where, what):
        self.items.append(f"{where}: {what}")


def load_schemas(failures):
    """Returns {name: schema} for every *.schema.json (name without the suffix)."""
    schemas = {}
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        name = path.name[: -len(".schema.json")]
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            failures.add(path.name, f"not readable JSON: {e}")
            continue
        try:
            Draft202012Validator.check_schema(schema)
        except jsonschema.exceptions.SchemaError as e:
            failures.add(path.name, f"not a valid draft 2020-12 schema: {e.message}")
            continue
        if schema.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
            failures.add(path.name, "$schema must be draft 2020-12")
        if schema.get("$id") != BASE_ID + path.name:
            failures.add(path.name, f"$id must be {BASE_ID + path.name}")
        schemas[name] = schema
    expected = set(MESSAGE_TYPES + ["common"])
    for missing in sorted(expected - schemas.keys()):
        failures.add(f"schemas/{missing}.schema.json", "missing")
    for extra in sorted(schemas.keys() - expected):
        failures.add(f"schemas/{extra}.schema.json",
                     "not a message type of vrouter.v1 or vrouter.video.v1")
    for name in MESSAGE_TYPES:
        schema = schemas.get(name)
        if schema is None:
            continue
        props = schema.get("properties", {})
        if props.get("type") != {"const": name}:
            failures.add(f"{name}.schema.json", f'properties.type must be {{"const": "{name}"}}')
        if schema.get("additionalProperties") is not False:
            failures.add(f"{name}.schema.json", "additionalProperties must be false")
    return schemas


def make_validators(schemas):
    """Returns {name: validator} resolving relative $refs between the schemas offline."""
    by_id = {s["$id"]: s for s in schemas.values()}
    try:
        from referencing import Registry, Resource  # jsonschema >= 4.18
        from referencing.jsonschema import DRAFT202012

        registry = Registry().with_resources(
            (uri, Resource.from_contents(s, default_specification=DRAFT202012))
            for uri, s in by_id.items())
        return {name: StrictValidator(s, registry=registry) for name, s in schemas.items()}
    except (ImportError, TypeError):
        pass
    validators = {}
    for name, schema in schemas.items():
        resolver = jsonschema.RefResolver(base_uri=schema["$id"], referrer=schema, store=by_id)
        validators[name] = StrictValidator(schema, resolver=resolver)
    return validators


def errors_of(validator, instance):
    return sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))


def describe(error):
    where = "/".join(str(p) for p in error.absolute_path) or "(message)"
    return f"at {where}: {error.message}"


def validate_message(validators, message):
    """Returns a list of problems with one decoded message (empty when it is valid)."""
    if not isinstance(message, dict):
        return ["a message must be a JSON object"]
    kind = message.get("type")
    if not isinstance(kind, str):
        return ["missing or non-string field 'type'"]
    if kind not in validators or kind == "common":
        return [f"no schema for message type {kind!r}"]
    return [describe(e) for e in errors_of(validators[kind], message)]


def json_depth(value):
    if isinstance(value, dict):
        return 1 + max((json_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((json_depth(v) for v in value), default=0)
    return 0


def _reject_constant(token):
    raise ValueError(f"{token} is not JSON")


def parse_strict(raw):
    """Parses like Boost.JSON with the router's options: UTF-8, no NaN/Infinity, depth <= 8."""
    text = raw.decode("utf-8")  # raises on invalid UTF-8
    value = json.loads(text, parse_constant=_reject_constant)
    if json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH}")
    return value


class DecoderModel:
    """What one of the router's decoders accepts, for predicted_error."""

    def __init__(self, name, types, request_id, nullable):
        self.name = name
        self.types = types            # the message types it decodes
        self.request_id = request_id  # the top-level `id` is a request id, read before `type`
        self.nullable = nullable      # optional fields for which `null` means absent


# DecodeClientMessage (proto/codec.cc).
CLIENT_DECODER = DecoderModel("client", CLIENT_TYPES, request_id=True, nullable=("id", "detail"))
# DecodeVideoServerMessage (proto/video_server_codec.cc): no request ids (`register.id` is the server's
# id, an ordinary field) and no optional fields.
VIDEO_DECODER = DecoderModel("video server", VIDEO_SERVER_TYPES, request_id=False, nullable=())


def predicted_error(validators, raw, decoder=CLIENT_DECODER):
    """Models one of the router's decoders: the error code it returns for `raw`, or None when the
    frame decodes. Unknown fields are ignored, as the router does."""
    try:
        message = parse_strict(raw)
    except ValueError:  # includes UnicodeDecodeError and json.JSONDecodeError
        return "invalid_json"
    if not isinstance(message, dict):
        return "invalid_message"
    if decoder.request_id and "id" in message and message["id"] is not None:
        ident = message["id"]
        if not _is_strict_integer(None, ident) or not 0 <= ident <= MAX_SAFE_INTEGER:
            return "invalid_message"
    kind = message.get("type")
    if not isinstance(kind, str):
        return "invalid_message"
    if kind not in decoder.types:
        return "unknown_type"
    validator = validators[kind]
    known = validator.schema.get("properties", {}).keys()
    # The codec treats `null` like an absent optional field (client: `id`, report `detail`).
    stripped = {k: v for k, v in message.items()
                if k in known and not (v is None and k in decoder.nullable)}
    return "invalid_message" if errors_of(validator, stripped) else None


def check_valid_examples(validators, failures):
    seen = set()
    for path in sorted(VALID.glob("*.json")):
        name = path.stem
        seen.add(name)
        try:
            message = parse_strict(path.read_bytes())
        except ValueError as e:
            failures.add(f"valid/{path.name}", f"not JSON: {e}")
            continue
        if isinstance(message, dict) and message.get("type") != name:
            failures.add(f"valid/{path.name}", f"'type' must be {name!r} (the file name)")
        for problem in validate_message(validators, message):
            failures.add(f"valid/{path.name}", problem)
        for decoder in (CLIENT_DECODER, VIDEO_DECODER):
            if (name in decoder.types
                    and predicted_error(validators, path.read_bytes(), decoder) is not None):
                failures.add(f"valid/{path.name}", f"the router's {decoder.name} decoder would "
                             "reject it")
    for missing in sorted(set(MESSAGE_TYPES) - seen):
        failures.add(f"valid/{missing}.json", "missing")


def check_invalid_examples(validators, schemas, failures, directory, decoder):
    """Checks one directory of invalid frames and its index.json against `decoder`'s model."""
    where_dir = directory.name
    index_path = directory / "index.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        failures.add(f"{where_dir}/index.json", f"not readable JSON: {e}")
        return
    if not isinstance(index, dict):
        failures.add(f"{where_dir}/index.json", "must map file name -> error code")
        return
    codes = set(schemas["common"]["$defs"]["errorCode"]["enum"])
    on_disk = {p.name for p in directory.glob("*.json")} - {"index.json"}
    for name in sorted(on_disk - index.keys()):
        failures.add(f"{where_dir}/{name}", "not listed in index.json")
    for name, code in index.items():
        where = f"{where_dir}/{name}"
        if code not in codes:
            failures.add(where, f"{code!r} is not an error code of the protocol")
        path = directory / name
        if not path.is_file():
            failures.add(where, "listed in index.json but missing")
            continue
        raw = path.read_bytes()
        predicted = predicted_error(validators, raw, decoder)
        if predicted != code:
            failures.add(where, f"index says {code}, the {decoder.name} decoder model says "
                         f"{predicted}")
        try:
            message = parse_strict(raw)
        except ValueError:
            continue  # not JSON to the router: no schema applies
        if not isinstance(message, dict) or message.get("type") not in decoder.types:
            continue  # invalid here by its type alone (e.g. a valid message of the other protocol)
        if not validate_message(validators, message):
            failures.add(where, "validates against its schema, but is meant to be invalid")


def check_messages_file(validators, source, failures):
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        failures.add(source, f"cannot read: {e}")
        return 0
    count = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        count += 1
        where = f"{source}:{number}"
        try:
            message = parse_strict(line.encode("utf-8"))
        except ValueError as e:
            failures.add(where, f"not JSON: {e}")
            continue
        for problem in validate_message(validators, message):
            failures.add(where, f"{problem}  [{line[:200]}]")
    if count == 0:
        failures.add(source, "no messages")
    return count


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    failures = Failures()
    schemas = load_schemas(failures)
    if failures.items or "common" not in schemas:
        for item in failures.items:
            print("FAIL", item)
        return 1
    validators = make_validators(schemas)
    check_valid_examples(validators, failures)
    check_invalid_examples(validators, schemas, failures, INVALID, CLIENT_DECODER)
    check_invalid_examples(validators, schemas, failures, VIDEO_INVALID, VIDEO_DECODER)
    checked = None
    if len(argv) == 2:
        checked = check_messages_file(validators, argv[1], failures)
    for item in failures.items:
        print("FAIL", item)
    if failures.items:
        print(f"{len(failures.items)} failure(s)")
        return 1
    summary = (f"ok: {len(schemas)} schemas, {len(list(VALID.glob('*.json')))} valid examples, "
               f"{len(list(INVALID.glob('*.json'))) - 1} invalid client examples, "
               f"{len(list(VIDEO_INVALID.glob('*.json'))) - 1} invalid video-server examples")
    if checked is not None:
        summary += f", {checked} messages from {argv[1]}"
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
