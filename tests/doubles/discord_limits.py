"""Discord's documented limits on what a message, an interaction reply or a command sync may hold,
checked the way Discord checks them (code points), answered the way Discord answers: HTTP 400
with `{"code": 50035, "errors": {...}, "message": "Invalid Form Body"}`.

The fake Discord runs every body the bot sends through these checks, in every test, so no test
can pass on a body that Discord would refuse.
"""

from __future__ import annotations

from typing import Any

CONTENT = 2000
EMBEDS = 10
TITLE = 256
DESCRIPTION = 4096
FIELDS = 25
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
AUTHOR = 256
EMBED_TOTAL = 6000
NONCE = 25
ACTION_ROWS = 5
BUTTONS_PER_ROW = 5
CUSTOM_ID = 100
BUTTON_LABEL = 80
SELECT_OPTIONS = 25
SELECT_TEXT = 100
PLACEHOLDER = 150
CHOICES = 25
CHOICE_NAME = 100
MODAL_TITLE = 45
TEXT_INPUT_VALUE = 4000

Errors = dict[str, Any]


def _error(code: str, message: str) -> dict[str, Any]:
    return {"_errors": [{"code": code, "message": message}]}


def _too_long(limit: int) -> dict[str, Any]:
    return _error("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _put(errors: Errors, path: list[str | int], error: dict[str, Any]) -> None:
    node = errors
    for part in path:
        node = node.setdefault(str(part), {})
    node.update(error)


def _text(errors: Errors, path: list[str | int], value: Any, limit: int, *, required: bool = False) -> int:
    if value is None:
        if required:
            _put(errors, path, _error("BASE_TYPE_REQUIRED", "This field is required"))
        return 0
    if not isinstance(value, str):
        _put(errors, path, _error("STRING_TYPE_CONVERT", "Could not interpret value as string."))
        return 0
    if required and not value.strip():
        _put(errors, path, _error("BASE_TYPE_REQUIRED", "This field is required"))
    if len(value) > limit:
        _put(errors, path, _too_long(limit))
    return len(value)


def embed_errors(errors: Errors, path: list[str | int], embed: Any) -> int:
    """Checks one embed; returns the characters it counts towards the 6,000."""
    if not isinstance(embed, dict):
        _put(errors, path, _error("MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"))
        return 0
    size = _text(errors, [*path, "title"], embed.get("title"), TITLE)
    size += _text(errors, [*path, "description"], embed.get("description"), DESCRIPTION)
    fields = embed.get("fields") or []
    if len(fields) > FIELDS:
        _put(errors, [*path, "fields"], _error("BASE_TYPE_MAX_LENGTH", f"Must be {FIELDS} or fewer in length."))
    for index, field in enumerate(fields):
        size += _text(errors, [*path, "fields", index, "name"], field.get("name"), FIELD_NAME, required=True)
        size += _text(errors, [*path, "fields", index, "value"], field.get("value"), FIELD_VALUE, required=True)
    footer = embed.get("footer") or {}
    size += _text(errors, [*path, "footer", "text"], footer.get("text"), FOOTER, required=bool(footer))
    author = embed.get("author") or {}
    size += _text(errors, [*path, "author", "name"], author.get("name"), AUTHOR, required=bool(author))
    return size


def _components_errors(errors: Errors, rows: Any, seen: set[str]) -> None:
    if len(rows) > ACTION_ROWS:
        _put(errors, ["components"], _too_long(ACTION_ROWS))
    for r, row in enumerate(rows):
        children = row.get("components") or []
        if row.get("type") != 1 or not children:
            _put(errors, ["components", r], _error("COMPONENT_LAYOUT_WIDTH_EXCEEDED", "Invalid action row"))
            continue
        selects = [c for c in children if c.get("type") in (3, 5, 6, 7, 8)]
        if len(children) > BUTTONS_PER_ROW or (selects and len(children) > 1):
            _put(errors, ["components", r, "components"], _error("COMPONENT_LAYOUT_WIDTH_EXCEEDED", "Too wide"))
        for c, child in enumerate(children):
            where: list[str | int] = ["components", r, "components", c]
            custom_id = child.get("custom_id")
            if child.get("type") == 4:  # text input, in a modal
                _text(errors, [*where, "label"], child.get("label"), 45, required=True)
                _text(errors, [*where, "value"], child.get("value"), TEXT_INPUT_VALUE)
                if int(child.get("max_length") or 0) > TEXT_INPUT_VALUE:
                    _put(errors, [*where, "max_length"], _error("NUMBER_TYPE_MAX", "int value should be <= 4000."))
            elif child.get("type") == 2 and child.get("style") == 5:
                _text(errors, [*where, "url"], child.get("url"), 512, required=True)
            else:
                _text(errors, [*where, "custom_id"], custom_id, CUSTOM_ID, required=True)
            if custom_id is not None:
                if custom_id in seen:
                    _put(errors, [*where, "custom_id"], _error("COMPONENT_CUSTOM_ID_DUPLICATED", "Duplicate"))
                seen.add(str(custom_id))
            if child.get("type") == 2:
                _text(errors, [*where, "label"], child.get("label"), BUTTON_LABEL)
            if child.get("type") == 3:
                options = child.get("options") or []
                if not 1 <= len(options) <= SELECT_OPTIONS:
                    _put(errors, [*where, "options"], _too_long(SELECT_OPTIONS))
                for o, option in enumerate(options):
                    _text(errors, [*where, "options", o, "label"], option.get("label"), SELECT_TEXT, required=True)
                    _text(errors, [*where, "options", o, "value"], option.get("value"), SELECT_TEXT, required=True)
                    _text(errors, [*where, "options", o, "description"], option.get("description"), SELECT_TEXT)
            _text(errors, [*where, "placeholder"], child.get("placeholder"), PLACEHOLDER)


def message_errors(body: Any, *, edit: bool = False) -> Errors:
    """What Discord finds wrong with a message body (create or edit); empty when it accepts it."""
    errors: Errors = {}
    if not isinstance(body, dict):
        return {"_errors": [{"code": "DICT_TYPE_CONVERT", "message": "Only dictionaries may be used"}]}
    _text(errors, ["content"], body.get("content"), CONTENT)
    embeds = body.get("embeds") or []
    if len(embeds) > EMBEDS:
        _put(errors, ["embeds"], _too_long(EMBEDS))
    total = sum(embed_errors(errors, ["embeds", i], e) for i, e in enumerate(embeds))
    if total > EMBED_TOTAL:
        _put(errors, ["embeds"], _error("MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {EMBED_TOTAL}"))
    nonce = body.get("nonce")
    if isinstance(nonce, str) and len(nonce) > NONCE:
        _put(errors, ["nonce"], _too_long(NONCE))
    _components_errors(errors, body.get("components") or [], set())
    mentions = body.get("allowed_mentions")
    if mentions is not None:
        parse = mentions.get("parse", [])
        if not set(parse) <= {"roles", "users", "everyone"}:
            _put(errors, ["allowed_mentions", "parse"], _error("BASE_TYPE_CHOICES", "Value must be one of..."))
        for kind in ("roles", "users"):
            if kind in parse and mentions.get(kind):
                _put(errors, ["allowed_mentions", kind], _error("MUTUALLY_EXCLUSIVE", f"parse and {kind} conflict"))
    if not edit and not (body.get("content") or embeds or body.get("components") or body.get("sticker_ids")):
        return {"__empty__": True}
    return errors


def interaction_errors(body: Any) -> Errors:
    """An interaction callback: `{type, data}`; type 4 and 7 carry a message, 8 choices, 9 a modal."""
    kind = body.get("type")
    data = body.get("data") or {}
    errors: Errors = {}
    if kind in (4, 7):
        inner = message_errors(data, edit=kind == 7)
        if inner:
            errors["data"] = inner
    elif kind == 8:
        choices = data.get("choices") or []
        if len(choices) > CHOICES:
            _put(errors, ["data", "choices"], _too_long(CHOICES))
        for index, choice in enumerate(choices):
            _text(errors, ["data", "choices", index, "name"], choice.get("name"), CHOICE_NAME, required=True)
    elif kind == 9:
        _text(errors, ["data", "title"], data.get("title"), MODAL_TITLE, required=True)
        _text(errors, ["data", "custom_id"], data.get("custom_id"), CUSTOM_ID, required=True)
        in_modal: Errors = {}
        _components_errors(in_modal, data.get("components") or [], set())
        if in_modal:
            errors["data"] = {**errors.get("data", {}), **in_modal}
    return errors


def error_body(errors: Errors) -> tuple[int, dict[str, Any]]:
    """Discord's status and body for what `message_errors` or `interaction_errors` found."""
    if errors.get("__empty__"):
        return 400, {"code": 50006, "message": "Cannot send an empty message"}
    return 400, {"code": 50035, "errors": errors, "message": "Invalid Form Body"}
