"""The JSON examples of README.md and docs/*.md, checked against the OpenAPI document.

    check_api_examples.py OPENAPI_JSON REPO_ROOT

1. The document is valid OpenAPI 3.1 (openapi-spec-validator: the specification's own schema).
2. Every ```json block carries a marker on the line before its fence:

       <!-- example: METHOD PATH STATUS -->    the body of that answer (PATH as in the document)
       <!-- example: METHOD PATH request -->   the request body
       <!-- example: schema NAME -->           one value of components.schemas.NAME (an item of a list)
       <!-- example: skip REASON -->           not a body of the JSON API (a token's claims, a log
                                               line, a SCIM resource): said why, and not checked

   A checked block is JSON as it stands (no `...` in place of members or values) and fits its
   schema, formats (`date-time`) included; a member the schema does not name is an error too, so
   an example cannot keep a member that was renamed or removed.
3. Every `curl ... -d '<JSON>'` in a ```sh block is a request example of the operation that its
   method and URL name (`$U/api/v1/licenses/$LIC/assignments` matches `/api/v1/licenses/{id}/...`).

Prints one line per finding, then a count; exits 1 when anything was found.
"""

import copy
import json
import pathlib
import re
import shlex
import sys

import jsonschema
from openapi_spec_validator import OpenAPIV31SpecValidator

MARKER = re.compile(r"^<!--\s*example:\s*(.*?)\s*-->\s*$")
METHODS = {"get", "put", "post", "patch", "delete"}


def closed(schema, allof_branch=False):
    """`schema` with `unevaluatedProperties: false` on every object schema that leaves its extra
    members open. A branch of `allOf` stays open (its parent closes over all branches)."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: closed(s) for name, s in value.items()}
        elif key == "allOf":
            out[key] = [closed(s, allof_branch=True) for s in value]
        elif key in ("items", "additionalProperties", "not", "if", "then", "else", "contains"):
            out[key] = closed(value)
        elif key in ("oneOf", "anyOf", "prefixItems"):
            out[key] = [closed(s) for s in value]
        else:
            out[key] = value
    open_object = ("properties" in schema or "allOf" in schema) and not (
        "additionalProperties" in schema or "unevaluatedProperties" in schema
    )
    if open_object and not allof_branch:
        out["unevaluatedProperties"] = False
    return out


class Document:
    def __init__(self, doc):
        self.doc = doc
        self.components = {"schemas": {n: closed(s) for n, s in doc["components"]["schemas"].items()}}

    def operation(self, method, path):
        op = self.doc["paths"].get(path, {}).get(method.lower())
        if op is None:
            raise LookupError(f"the document has no {method.upper()} {path}")
        return op

    def match(self, method, concrete):
        """The document's path that `concrete` (with literal or `$VAR` segments) is an instance of."""
        segments = concrete.strip("/").split("/")
        found = []
        for path, item in self.doc["paths"].items():
            template = path.strip("/").split("/")
            if len(template) != len(segments) or method.lower() not in item:
                continue
            literal = 0
            for t, s in zip(template, segments):
                if t.startswith("{") and t.endswith("}"):
                    continue
                if t != s:
                    break
                literal += 1
            else:
                found.append((literal, path))
        if not found:
            raise LookupError(f"no operation {method.upper()} matches {concrete}")
        found.sort(reverse=True)
        return found[0][1]

    @staticmethod
    def json_schema(content, what):
        media = [m for m in content if m.endswith("json")]
        if len(media) != 1:
            raise LookupError(f"{what}: {len(media)} JSON media types ({', '.join(content) or 'none'})")
        return content[media[0]]["schema"]

    def schema_for(self, marker):
        words = marker.split()
        if len(words) == 2 and words[0] == "schema":
            if words[1] not in self.doc["components"]["schemas"]:
                raise LookupError(f"no schema {words[1]} in components.schemas")
            return {"$ref": f"#/components/schemas/{words[1]}"}
        if len(words) != 3 or words[0].lower() not in METHODS:
            raise LookupError(f"a marker is `METHOD PATH STATUS|request`, `schema NAME` or `skip REASON`: {marker!r}")
        method, path, which = words
        op = self.operation(method, path)
        if which == "request":
            if "requestBody" not in op:
                raise LookupError(f"{method} {path} takes no request body")
            return self.json_schema(op["requestBody"]["content"], f"{method} {path} request")
        answer = op["responses"].get(which)
        if answer is None:
            raise LookupError(f"{method} {path} answers no {which} (only {', '.join(op['responses'])})")
        return self.json_schema(answer.get("content", {}), f"{method} {path} {which}")

    def errors(self, instance, schema):
        root = dict(closed(schema))
        root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        root["components"] = self.components
        validator = jsonschema.Draft202012Validator(root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in error.absolute_path) or "(top)"
            yield f"{where}: {error.message}"


def fences(text):
    """(line number of the opening fence, language, body) of each fenced block."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\S*)\s*$", lines[i])
        if m:
            start, lang, body = i, m.group(1), []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            yield start, lang, "\n".join(body)
        i += 1


def curl_requests(script):
    """(method, URL path, JSON body) of each curl command in a shell block that sends JSON."""
    script = re.sub(r"\\\n", " ", script)
    for line in script.split("\n"):
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        starts = [i for i, w in enumerate(words) if w == "curl" or w.endswith("(curl")]
        for start in starts:
            method, url, data = None, None, None
            i = start + 1
            while i < len(words) and words[i] not in ("|", "&&", ";"):
                w = words[i]
                if w in ("-X", "--request"):
                    method, i = words[i + 1], i + 1
                elif w in ("-d", "--data", "--data-raw"):
                    data, i = words[i + 1], i + 1
                elif w in ("-H", "-o", "--data-urlencode"):
                    i += 1
                elif "$U/" in w or w.startswith("http"):
                    url = w
                i += 1
            if data is None or not data.lstrip().startswith(("{", "[")) or url is None:
                continue
            path = re.sub(r"^.*?\$U|^https?://[^/]+", "", url).split("?")[0]
            yield (method or "POST"), path, data


def main():
    doc_path, root = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    # Without rfc3339-validator, jsonschema would let any string pass as a `date-time`.
    if jsonschema.Draft202012Validator.FORMAT_CHECKER.conforms("...", "date-time"):
        sys.exit("date-time is not checked: install tests/requirements.txt (rfc3339-validator)")
    raw = json.loads(doc_path.read_text())
    findings, checked, skipped = [], 0, 0
    for error in OpenAPIV31SpecValidator(raw).iter_errors():
        where = "/".join(str(p) for p in error.absolute_path)
        findings.append(f"openapi.json: {where}: {error.message[:300]}")
    doc = Document(raw)

    files = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    for file in files:
        name = file.relative_to(root)
        text = file.read_text()
        lines = text.split("\n")
        for start, lang, body in fences(text):
            at = f"{name}:{start + 1}"
            m = MARKER.match(lines[start - 1]) if start > 0 else None
            if lang == "json":
                if m is None:
                    findings.append(f"{at}: a ```json block without `<!-- example: ... -->` on the line before it")
                    continue
                marker = m.group(1)
                if marker.startswith("skip"):
                    if not marker[4:].strip():
                        findings.append(f"{at}: `skip` needs a reason")
                    skipped += 1
                    continue
                try:
                    schema = doc.schema_for(marker)
                    instance = json.loads(body)
                except (LookupError, json.JSONDecodeError) as e:
                    findings.append(f"{at}: {marker}: {e}")
                    continue
                findings += [f"{at}: {marker}: {e}" for e in doc.errors(instance, schema)]
                checked += 1
            elif m is not None:
                findings.append(f"{at}: an example marker before a ```{lang} block, not a ```json one")
            if lang in ("sh", "bash", "shell"):
                for method, path, data in curl_requests(body):
                    what = f"{at}: curl -X {method} {path}"
                    try:
                        template = doc.match(method, path)
                        schema = doc.schema_for(f"{method} {template} request")
                        instance = json.loads(data)
                    except (LookupError, json.JSONDecodeError) as e:
                        findings.append(f"{what}: {e}")
                        continue
                    findings += [f"{what}: {e}" for e in doc.errors(instance, schema)]
                    checked += 1

    for f in findings:
        print(f)
    print(f"{checked} examples checked against the document, {skipped} skipped with a reason, {len(findings)} findings")
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main()
