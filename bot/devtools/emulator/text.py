"""Message text as Telegram sees it: parse modes turned into plain text plus entities.

Telegram strips the markup, reports formatting as entities with UTF-16 offsets and rejects
malformed markup with "can't parse entities". Reproducing that catches a bot that forgets to
escape user-supplied text.
"""

from __future__ import annotations

import html
import re
from typing import Any

from bot.devtools.emulator.errors import ApiError, bad_request

Entity = dict[str, Any]

_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![^\s])")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's offsets and limits."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode())


def _parse_error(message: str) -> ApiError:
    return bad_request(f"can't parse entities: {message}")


def _entity(kind: str, start: int, end: int, **extra: Any) -> Entity | None:
    if end <= start:
        return None
    return {"type": kind, "offset": start, "length": end - start, **extra}


def command_entities(text: str) -> list[Entity]:
    """``bot_command`` entities, which Telegram adds to every ``/command`` a user sends."""
    found = []
    for match in _COMMAND.finditer(text):
        offset = utf16_len(text[: match.start()])
        found.append({"type": "bot_command", "offset": offset, "length": utf16_len(match.group())})
    return found


def parse_text(text: str, parse_mode: str | None) -> tuple[str, list[Entity]]:
    """Apply ``parse_mode`` to ``text``; raise :class:`ApiError` where Telegram would."""
    if not parse_mode:
        return text, []
    mode = parse_mode.lower()
    if mode == "html":
        return _parse_html(text)
    if mode == "markdownv2":
        return _MarkdownParser(text, v2=True).parse()
    if mode == "markdown":
        return _MarkdownParser(text, v2=False).parse()
    raise bad_request(f"unsupported parse_mode {parse_mode}")


# HTML ------------------------------------------------------------------------------------------

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_SPECIAL = re.compile(r"[<&]")
_HTML_ATTR = re.compile(r"""([A-Za-z][\w-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")


def _html_attrs(raw: str) -> dict[str, str]:
    return {
        m.group(1).lower(): html.unescape(m.group(2) or m.group(3) or m.group(4) or "")
        for m in _HTML_ATTR.finditer(raw)
    }


def _html_entity(source: str, index: int) -> tuple[str, int] | None:
    semi = source.find(";", index, index + 12)
    if semi < 0:
        return None
    name = source[index + 1 : semi]
    if name in _HTML_NAMED:
        return _HTML_NAMED[name], semi + 1
    if name.startswith("#"):
        digits = name[1:]
        try:
            code = int(digits[1:], 16) if digits[:1] in ("x", "X") else int(digits)
            return chr(code), semi + 1
        except ValueError:
            return None
    return None


def _parse_html(source: str) -> tuple[str, list[Entity]]:
    out: list[str] = []
    pos = 0
    stack: list[tuple[str, str, int, dict[str, str]]] = []
    entities: list[Entity] = []
    i, n = 0, len(source)
    while i < n:
        special = _HTML_SPECIAL.search(source, i)
        j = special.start() if special else n
        if j > i:
            chunk = source[i:j]
            out.append(chunk)
            pos += utf16_len(chunk)
            i = j
            continue
        if source[i] == "&":
            decoded = _html_entity(source, i)
            char, i = decoded if decoded else ("&", i + 1)
            out.append(char)
            pos += utf16_len(char)
            continue
        end = source.find(">", i)
        if end < 0:
            raise _parse_error(f"Unclosed start tag at byte offset {_byte_offset(source, i)}")
        inner = source[i + 1 : end].strip()
        if inner.startswith("/"):
            name = inner[1:].strip().lower()
            if not stack:
                raise _parse_error(
                    f'Unexpected end tag "</{name}>" at byte offset {_byte_offset(source, i)}'
                )
            tag, kind, start, attrs = stack.pop()
            if name and name != tag:
                raise _parse_error(
                    f"Unmatched end tag at byte offset {_byte_offset(source, i)}, "
                    f'expected "</{tag}>", found "</{name}>"'
                )
            entity = _html_close(kind, start, pos, attrs, stack)
            if entity:
                entities.append(entity)
        else:
            name, _, rest = inner.partition(" ")
            name = name.lower()
            if name not in _HTML_TAGS:
                raise _parse_error(
                    f'Unsupported start tag "{name}" at byte offset {_byte_offset(source, i)}'
                )
            attrs = _html_attrs(rest)
            if name == "span" and attrs.get("class") != "tg-spoiler":
                raise _parse_error(
                    f'Tag "span" must have class "tg-spoiler" at byte offset '
                    f"{_byte_offset(source, i)}"
                )
            stack.append((name, _HTML_TAGS[name], pos, attrs))
        i = end + 1
    if stack:
        raise _parse_error(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _html_close(
    kind: str,
    start: int,
    end: int,
    attrs: dict[str, str],
    stack: list[tuple[str, str, int, dict[str, str]]],
) -> Entity | None:
    if kind == "text_link":
        href = attrs.get("href")
        return _entity("text_link", start, end, url=href) if href else None
    if kind == "code" and stack and stack[-1][1] == "pre" and stack[-1][2] == start:
        language = attrs.get("class", "").removeprefix("language-")
        if language:
            stack[-1][3]["language"] = language
        return None
    if kind == "pre" and attrs.get("language"):
        return _entity("pre", start, end, language=attrs["language"])
    if kind == "blockquote" and "expandable" in attrs:
        return _entity("expandable_blockquote", start, end)
    if kind == "custom_emoji":
        return _entity(kind, start, end, custom_emoji_id=attrs.get("emoji-id", ""))
    return _entity(kind, start, end)


# Markdown --------------------------------------------------------------------------------------

_V2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_V2_MARKERS = {"__": "underline", "||": "spoiler", "*": "bold", "_": "italic", "~": "strikethrough"}
_V1_MARKERS = {"*": "bold", "_": "italic"}
_V2_PLAIN = re.compile(r"[^\\_*\[\]()~`>#+\-=|{}.!\n]+")
_V1_PLAIN = re.compile(r"[^\\_*\[\]`\n]+")


class _MarkdownParser:
    """Telegram's MarkdownV2 (strict escaping) and legacy Markdown."""

    def __init__(self, source: str, *, v2: bool) -> None:
        self.source = source
        self.v2 = v2
        self.out: list[str] = []
        self.pos = 0
        self.entities: list[Entity] = []
        self.stack: list[tuple[str, str, int, int]] = []  # marker, kind, start, source index
        self.quote_start: int | None = None

    def emit(self, text: str) -> None:
        self.out.append(text)
        self.pos += utf16_len(text)

    def error_unclosed(self, kind: str, index: int) -> ApiError:
        at = _byte_offset(self.source, index)
        if self.v2:
            return _parse_error(f"Can't find end of {kind.capitalize()} entity at byte offset {at}")
        return _parse_error(f"Can't find end of the entity starting at byte offset {at}")

    def add(self, entity: Entity | None) -> None:
        if entity:
            self.entities.append(entity)

    def parse(self) -> tuple[str, list[Entity]]:
        src, n, i = self.source, len(self.source), 0
        plain = _V2_PLAIN if self.v2 else _V1_PLAIN
        while i < n:
            match = plain.match(src, i)
            if match:
                self.emit(match.group())
                i = match.end()
                continue
            i = self.step(i)
        self.end_quote()
        if self.stack:
            _, kind, _, index = self.stack[-1]
            raise self.error_unclosed(kind, index)
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.out), self.entities

    def step(self, i: int) -> int:
        src = self.source
        c = src[i]
        if c == "\\":
            if i + 1 < len(src) and (self.v2 or src[i + 1] in "_*`["):
                self.emit(src[i + 1])
                return i + 2
            self.emit(c)
            return i + 1
        if c == "\n":
            self.emit(c)
            if self.quote_start is not None and not src.startswith(">", i + 1):
                self.end_quote(trailing_newline=True)
            return i + 1
        if c == "`":
            return self.code(i)
        if c == "[":
            self.stack.append(("[", "text_link", self.pos, i))
            return i + 1
        if c == "]" and self.stack and self.stack[-1][0] == "[":
            return self.link_end(i)
        marker = self.marker_at(i)
        if marker:
            return self.toggle(marker, i)
        if self.v2 and c == ">" and (i == 0 or src[i - 1] == "\n"):
            if self.quote_start is None:
                self.quote_start = self.pos
            return i + 1
        if self.v2 and c in _V2_RESERVED:
            raise _parse_error(
                f"Character '{c}' is reserved and must be escaped with the preceding '\\'"
            )
        self.emit(c)
        return i + 1

    def marker_at(self, i: int) -> str | None:
        markers = _V2_MARKERS if self.v2 else _V1_MARKERS
        for marker in markers:
            if self.source.startswith(marker, i):
                return marker
        return None

    def toggle(self, marker: str, i: int) -> int:
        kinds = _V2_MARKERS if self.v2 else _V1_MARKERS
        if self.stack and self.stack[-1][0] == marker:
            _, kind, start, _ = self.stack.pop()
            self.add(_entity(kind, start, self.pos))
        elif not self.v2 and self.stack:
            self.emit(marker)  # legacy Markdown does not nest: a foreign marker is text
        else:
            self.stack.append((marker, kinds[marker], self.pos, i))
        return i + len(marker)

    def code(self, i: int) -> int:
        src = self.source
        fence = "```" if src.startswith("```", i) else "`"
        j = i + len(fence)
        body: list[str] = []
        while j < len(src):
            if src.startswith(fence, j):
                break
            if src[j] == "\\" and j + 1 < len(src) and src[j + 1] in "\\`":
                body.append(src[j + 1])
                j += 2
                continue
            body.append(src[j])
            j += 1
        else:
            raise self.error_unclosed("pre" if fence == "```" else "code", i)
        text = "".join(body)
        if fence == "`":
            start = self.pos
            self.emit(text)
            self.add(_entity("code", start, self.pos))
            return j + 1
        first, newline, rest = text.partition("\n")
        language = first.strip() if newline and first.strip() and " " not in first.strip() else ""
        content = rest if language else text.removeprefix("\n")
        start = self.pos
        self.emit(content)
        extra = {"language": language} if language else {}
        self.add(_entity("pre", start, self.pos, **extra))
        return j + 3

    def link_end(self, i: int) -> int:
        src = self.source
        _, _, start, open_index = self.stack.pop()
        if not src.startswith("(", i + 1):
            if self.v2:
                raise _parse_error(
                    "Character ']' is reserved and must be escaped with the preceding '\\'"
                )
            self.emit("]")
            return i + 1
        j = i + 2
        url: list[str] = []
        while j < len(src) and src[j] != ")":
            if src[j] == "\\" and j + 1 < len(src):
                url.append(src[j + 1])
                j += 2
                continue
            url.append(src[j])
            j += 1
        if j >= len(src):
            raise self.error_unclosed("text_link", open_index)
        self.add(_entity("text_link", start, self.pos, url="".join(url)))
        return j + 1

    def end_quote(self, *, trailing_newline: bool = False) -> None:
        if self.quote_start is None:
            return
        end = self.pos - 1 if trailing_newline else self.pos
        self.add(_entity("blockquote", self.quote_start, end))
        self.quote_start = None
