"""XML mode's view of an output schema: what each element holds, how the model is told, and how a
value is written back as XML (`beta.invocation.xml_mode.enabled`, spec §5).

The answer is one `<response>` element. An object is an element per property, named after it, in
the schema's property order; an array is its element holding one `<item>` per entry; a string,
number, boolean or enum value is its element's text; and a value the schema does not pin to one
kind (no type, or a union of several) is written as JSON inside its element. An empty element is
null where the schema allows null, otherwise the empty text, list or object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import orjson

from taskgate.errors import BadRequestError
from taskgate.lru import BoundedLRU

ROOT = "response"
ITEM = "item"
XML_MODE_KEY = "beta.invocation.xml_mode.enabled"

# A property name must be an element name: letters, digits, `_`, `-` and `.`, not starting with a
# digit, `-` or `.`; no `:` (a namespace prefix) and nothing starting with "xml" (reserved).
_ELEMENT_NAME = re.compile(r"(?!(?i:xml))[^\W\d][\w.\-]*")

_ANNOTATIONS = {"$ref", "description", "title", "$comment", "examples", "default"}  # beside a `$ref`, no change
_CACHE_ENTRIES = 512
_CACHE_BYTES = 16 * 1024 * 1024
_SHAPE_BYTES_PER_SCHEMA_BYTE = 4  # a shape tree holds about four times its schema's canonical JSON


@dataclass(eq=False, slots=True)
class Shape:
    """How one element of the answer is read. Recursive schemas make a graph: a `$ref` back to an
    enclosing definition is the same Shape object."""

    # "object", "array", "string", "integer", "number", "boolean", "null", "enum" (its text is one
    # of the listed values), or "json" (its text is JSON)
    kind: str = "json"
    nullable: bool = False
    properties: dict[str, Shape] = field(default_factory=dict)  # in the schema's order
    required: frozenset[str] = frozenset()
    extra: Shape | None = None  # the shape of elements `properties` does not name
    items: Shape | None = None
    prefix: list[Shape] = field(default_factory=list)  # `prefixItems`: the first entries' shapes
    enum: list[Any] = field(default_factory=list)
    description: str | None = None


_shapes: BoundedLRU[bytes, Shape | str] = BoundedLRU(
    _CACHE_ENTRIES, _CACHE_BYTES, lambda key, _: len(key) * _SHAPE_BYTES_PER_SCHEMA_BYTE)


def xml_shape(output_schema: dict[str, Any] | None) -> Shape:
    """The shape XML mode reads answers by: a 400 without an output schema (there is nothing to
    shape the XML by), or with a property name that cannot be an element name."""
    if output_schema is None:
        raise BadRequestError(f"configuration '{XML_MODE_KEY}' needs an output_schema: the XML asked for is "
                              "shaped by it")
    return shape_of(output_schema)


def shape_of(schema: Any) -> Shape:
    """The shape of a checked schema, cached by its JSON as written: its property order is the
    elements' order, so two orders are two shapes."""
    key = orjson.dumps(schema, option=orjson.OPT_NON_STR_KEYS)
    entry = _shapes.get(key)
    if entry is None:
        try:
            entry = _ShapeBuilder(schema).shape(schema)
        except _NotAnElementName as exc:
            entry = (f"configuration '{XML_MODE_KEY}' needs output_schema property names that can be XML "
                     f"element names (a letter or '_' first, then letters, digits, '_', '-' or '.'; not "
                     f"'xml...'): {str(exc)[:100]!r} cannot be one")
        _shapes.put(key, entry)
    if isinstance(entry, str):
        raise BadRequestError(entry)
    return entry


class _NotAnElementName(ValueError):
    pass


class _ShapeBuilder:
    """Reads a schema into shapes: local `$ref`s resolved (once each, so recursion ends), `allOf`
    merged, and a union with null made nullable."""

    def __init__(self, root: Any) -> None:
        self._root = root
        self._refs: dict[str, Shape] = {}

    def shape(self, schema: Any) -> Shape:
        if not isinstance(schema, dict):
            return Shape()  # `true`, `false` or not a schema: anything, as JSON
        ref = schema.get("$ref")
        if isinstance(ref, str) and schema.keys() <= _ANNOTATIONS:
            return self._ref(ref, schema)
        shape = Shape(description=schema.get("description") if isinstance(schema.get("description"), str) else None)
        self._fill(shape, schema)
        return shape

    def _ref(self, ref: str, schema: dict[str, Any]) -> Shape:
        known = self._refs.get(ref)
        if known is not None:
            return known
        target = self._resolve(ref)
        shape = Shape()
        self._refs[ref] = shape  # before filling it: a reference inside it back to `ref` finds it
        if target is not None:
            self._fill(shape, target)
        if shape.description is None and isinstance(schema.get("description"), str):
            shape.description = schema["description"]
        return shape

    def _resolve(self, ref: str) -> Any:
        """The schema a local JSON pointer (`#`, `#/$defs/Name`) points at; None for any other."""
        if not ref.startswith("#") or (len(ref) > 1 and not ref.startswith("#/")):
            return None
        node: Any = self._root
        for part in ref[2:].split("/") if len(ref) > 1 else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node

    def _fill(self, shape: Shape, schema: Any) -> None:
        if not isinstance(schema, dict):
            return
        if shape.description is None and isinstance(schema.get("description"), str):
            shape.description = schema["description"]
        if isinstance(schema.get("$ref"), str):
            self._merge(shape, self._ref(schema["$ref"], schema))
        for part in schema.get("allOf") or ():
            self._merge(shape, self.shape(part))
        union = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(union, list):
            self._union(shape, [self.shape(branch) for branch in union])
        if "const" in schema:
            shape.kind, shape.enum = "enum", [schema["const"]]
        elif isinstance(schema.get("enum"), list) and schema["enum"]:
            shape.kind, shape.enum = "enum", list(schema["enum"])
            shape.nullable = shape.nullable or None in schema["enum"]
        else:
            self._typed(shape, schema)

    def _typed(self, shape: Shape, schema: dict[str, Any]) -> None:
        kinds = schema.get("type")
        kinds = [kinds] if isinstance(kinds, str) else kinds if isinstance(kinds, list) else []
        if "null" in kinds:
            shape.nullable = True
        kinds = [kind for kind in kinds if kind != "null"]
        if not kinds and shape.kind == "json":
            if isinstance(schema.get("properties"), dict):
                kinds = ["object"]
            elif "items" in schema or "prefixItems" in schema:
                kinds = ["array"]
        if len(kinds) > 1:
            shape.kind = "json"
            return
        if kinds:
            shape.kind = "number" if kinds[0] == "number" else kinds[0]
        elif shape.nullable and shape.kind == "json" and schema.get("type") is not None:
            shape.kind = "null"
        if shape.kind == "object":
            if isinstance(schema.get("required"), list):
                shape.required = shape.required | {n for n in schema["required"] if isinstance(n, str)}
            properties = schema.get("properties")
            if isinstance(properties, dict):
                shape.properties = dict(shape.properties)  # its own: what it shares is another shape's
                for name, sub in properties.items():
                    if not isinstance(name, str) or not _ELEMENT_NAME.fullmatch(name):
                        raise _NotAnElementName(name)
                    shape.properties[name] = self.shape(sub)
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                shape.extra = self.shape(extra)
        elif shape.kind == "array":
            if isinstance(schema.get("prefixItems"), list):
                shape.prefix = [self.shape(sub) for sub in schema["prefixItems"]]
            if "items" in schema:
                shape.items = self.shape(schema["items"])

    @staticmethod
    def _merge(shape: Shape, other: Shape) -> None:
        """`allOf` and a `$ref` beside other keywords: the parts' properties together. A shape that
        has none of its own shares `other`'s, which a recursive schema may still be filling."""
        if other.kind != "json":
            shape.kind = other.kind
        shape.nullable = shape.nullable or other.nullable
        if shape.properties:
            shape.properties.update(other.properties)
        else:
            shape.properties = other.properties
        shape.required = shape.required | other.required
        shape.extra = shape.extra or other.extra
        shape.items = shape.items or other.items
        shape.prefix = shape.prefix or other.prefix
        shape.enum = shape.enum or other.enum
        shape.description = shape.description or other.description

    @staticmethod
    def _union(shape: Shape, branches: list[Shape]) -> None:
        """One kind or null (`Optional[X]`) reads as that kind, nullable; any other union as JSON."""
        kept = [branch for branch in branches if branch.kind != "null"]
        if len(kept) < len(branches):
            shape.nullable = True
        if len(kept) == 1:
            _ShapeBuilder._merge(shape, kept[0])
            shape.nullable = True if len(branches) > 1 else shape.nullable or kept[0].nullable
        elif not kept and branches:
            shape.kind = "null"


# ---- what the model is told


def xml_instructions(shape: Shape) -> str:
    """The system prompt's part that asks for XML shaped like `shape`."""
    template = "\n".join(_template(ROOT, shape, 0, set(), {}))
    return (
        "Respond only with one XML element <response> shaped like the template below, with no other text, "
        "no code fence, no XML declaration and no DOCTYPE:\n"
        f"{template}\n"
        "Rules:\n"
        "- Each field is an element named after it, in the order shown. A field marked (optional) may be "
        "left out; every other field must be there.\n"
        "- A list is its element holding one <item> element per entry, in order; an empty list is an empty "
        "element.\n"
        "- Text is written as it is, over as many lines as it needs: write & as &amp; and < as &lt;, or put "
        "the text inside <![CDATA[ and ]]>. Whitespace at its start and end is dropped.\n"
        "- A number is written in decimal (like 42 or -3.5), a boolean as true or false.\n"
        "- Where a field may be null, an empty element is null.\n"
        "- A value marked (JSON) is written as JSON text inside its element."
    )


def _template(name: str, shape: Shape, indent: int, open_shapes: set[int], written: dict[int, str]) -> list[str]:
    """`shape` as template lines. An object or list shape met again (one `$ref` used in several
    places) points back to where it was written rather than being written again: written out each
    time, a few kilobytes of schema whose definitions each use the next twice made a template of
    gigabytes."""
    pad = "  " * indent
    lines = [f"{pad}<!-- {_comment(shape.description)} -->"] if shape.description else []
    if id(shape) in open_shapes:  # a recursive schema: this element repeats an enclosing one
        return [*lines, f"{pad}<{name}>(the same shape as the enclosing <{name}>)</{name}>"]
    kind = shape.kind
    if (kind == "array" or (kind == "object" and shape.properties)) and (first := written.get(id(shape))):
        return [*lines, f"{pad}<{name}>(the same shape as the <{first}> above)</{name}>{_null_mark(shape)}"]
    if kind == "array" or (kind == "object" and shape.properties):
        written[id(shape)] = name
    if kind == "object" and shape.properties:
        open_shapes.add(id(shape))
        lines.append(f"{pad}<{name}>")
        for child, sub in shape.properties.items():
            marks = [] if child in shape.required else ["optional"]
            body = _template(child, sub, indent + 1, open_shapes, written)
            if marks:
                body[-1] += f" ({', '.join(marks)})"
            lines.extend(body)
        if shape.extra is not None:
            lines.append(f"{pad}  (other fields, each as an element named after it)")
        open_shapes.discard(id(shape))
        lines.append(f"{pad}</{name}>{_null_mark(shape)}")
    elif kind == "array":
        open_shapes.add(id(shape))
        lines.append(f"{pad}<{name}>")
        for sub in shape.prefix:
            lines.extend(_template(ITEM, sub, indent + 1, open_shapes, written))
        if shape.items is not None or not shape.prefix:
            lines.extend(_template(ITEM, shape.items or Shape(), indent + 1, open_shapes, written))
            lines.append(f"{pad}  (one <item> per entry)")
        open_shapes.discard(id(shape))
        lines.append(f"{pad}</{name}>{_null_mark(shape)}")
    else:
        lines.append(f"{pad}<{name}>{_placeholder(shape)}</{name}>{_null_mark(shape)}")
    return lines


def _placeholder(shape: Shape) -> str:
    if shape.kind == "enum":
        return "(one of: " + " | ".join(escape(_enum_text(value)) for value in shape.enum) + ")"
    return {"string": "(text)", "integer": "(integer)", "number": "(number)", "boolean": "(true or false)",
            "null": "(empty: null)", "object": "(fields, each as an element named after it)"}.get(shape.kind,
                                                                                                "(JSON)")


def _null_mark(shape: Shape) -> str:
    return " (may be null)" if shape.nullable and shape.kind != "null" else ""


def _comment(text: str | None) -> str:
    """A description as an XML comment's text: one line, without the `--` a comment may not hold."""
    return " ".join((text or "").split()).replace("--", "- -")[:500]


def _enum_text(value: Any) -> str:
    """An enum value as its element's text: a string as it is, anything else as JSON."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def enum_value(shape: Shape, text: str) -> Any:
    """The enum value written as `text`; `text` itself when none is (the schema check says why)."""
    for value in shape.enum:
        if _enum_text(value) == text:
            return value
    return text


# ---- a value written as XML: demonstrations and replayed cached answers


def to_xml(value: Any, shape: Shape, name: str = ROOT) -> str:
    """`value` as the element `name` that the reader turns back into `value`. ValueError when it
    cannot be one (a member name that is not an element name)."""
    parts: list[str] = []
    _write(parts, name, value, shape)
    return "".join(parts)


def _write(parts: list[str], name: str, value: Any, shape: Shape) -> None:
    kind = shape.kind
    if value is None:
        if not shape.nullable and kind not in ("null", "json", "enum"):
            raise ValueError(f"<{name}> cannot be null")
        parts.append(f"<{name}>{'null' if kind in ('json', 'enum') else ''}</{name}>")
        return
    if kind == "object" and isinstance(value, dict):
        parts.append(f"<{name}>")
        for key, member in value.items():
            if not isinstance(key, str) or not _ELEMENT_NAME.fullmatch(key):
                raise ValueError(f"{key!r} cannot be an element name")
            _write(parts, key, member, shape.properties.get(key) or shape.extra or Shape())
        parts.append(f"</{name}>")
    elif kind == "array" and isinstance(value, list):
        parts.append(f"<{name}>")
        for index, entry in enumerate(value):
            sub = shape.prefix[index] if index < len(shape.prefix) else shape.items or Shape()
            _write(parts, ITEM, entry, sub)
        parts.append(f"</{name}>")
    elif kind == "string" and isinstance(value, str):
        if value != value.strip() or (value == "" and shape.nullable):
            raise ValueError(f"<{name}> would lose its text's outer whitespace")
        parts.append(f"<{name}>{escape(value)}</{name}>")
    elif kind == "enum":
        parts.append(f"<{name}>{escape(_enum_text(value))}</{name}>")
    elif kind in ("integer", "number", "boolean") and not isinstance(value, str | dict | list):
        parts.append(f"<{name}>{orjson.dumps(value).decode()}</{name}>")
    else:  # JSON inside the element, also for a value that does not fit its shape
        parts.append(f"<{name}>{escape(orjson.dumps(value).decode())}</{name}>")


def attribute_text(name: str, value: str) -> str:
    """` name="value"`, as markup inside a text field is written back."""
    return f" {name}={quoteattr(value)}"

