"""Rich display of sandboxes in notebooks: a status card and a list, each as HTML with a plain-text twin.

``display(sb)`` (and a cell ending in ``sb``) shows :func:`sandbox_bundle`:
the card with name, image, state, uptime and the containers running in the
sandbox's own Docker daemon.  Terminal IPython and nbconvert to text get the
``text/plain`` twin of the same facts.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any, Iterable

from .errors import SandboxError
from .status import SandboxInfo, time_left_text

if TYPE_CHECKING:
    from .sync import Sandbox

STATE_COLORS = {"starting": "#b26a00", "ready": "#2e7d32", "failed": "#c62828", "stopped": "#757575", "gone": "#757575", "paused": "#0277bd"}
CONTAINER_FIELDS = ("ID", "Image", "Command", "Status", "Names")
PS_TIMEOUT = 10.0
LIST_COLUMNS = ("NAME", "STATE", "DOCKER", "IMAGE", "NETWORK", "UPTIME", "OWNER")


def duration(seconds: float | None) -> str:
    """A short human duration: ``42s``, ``3m05s``, ``2h07m``; ``-`` for None."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


def inner_containers(sandbox: "Sandbox", info: SandboxInfo) -> list[dict[str, str]] | None:
    """The containers running in the sandbox's own daemon (``docker ps``), or None if it cannot be asked."""
    if not (info.docker and info.state == "ready"):
        return None
    try:
        process = sandbox.docker("ps", "--format", "{{json .}}", timeout=PS_TIMEOUT)
        if process.wait() != 0:
            return None
        lines = process.stdout.read().splitlines()
    except SandboxError:
        return None
    containers = []
    for line in lines:
        try:
            data = json.loads(line)
        except ValueError:
            continue
        containers.append({field: str(data.get(field, "")) for field in CONTAINER_FIELDS})
    return containers


def _network(info: SandboxInfo) -> str:
    """``none``, ``host``, or ``sandbox`` with its address and live egress policy."""
    if info.network != "sandbox" or not info.egress:
        return info.network or "-"
    egress = info.egress if isinstance(info.egress, str) else ", ".join(info.egress)
    return f"sandbox{' ' + info.address if info.address else ''}, egress {egress}"


def _facts(info: SandboxInfo) -> list[tuple[str, str]]:
    return [
        ("image", info.image),
        ("docker", "yes" if info.docker else "no"),
        ("network", _network(info)),
        ("cpu", f"{info.cpu:g}" if info.cpu else "-"),
        ("memory", info.memory or "-"),
        ("disk", info.disk or "-"),
        ("uptime", duration(info.uptime)),
        ("owner", info.owner or "-"),
        ("runtime", info.runtime or "-"),
    ] + _limit_facts(info)


def _limit_facts(info: SandboxInfo) -> list[tuple[str, str]]:
    """The time limits with the time left (only for a sandbox that has them)."""
    from .spec import format_duration

    facts = []
    if info.ttl is not None:
        facts.append(("ttl", f"{format_duration(info.ttl)} (removed in {format_duration(info.time_left)})"))
    if info.idle_timeout is not None:
        left = f"paused after {format_duration(info.idle_left)} more idle" if info.idle_left is not None else info.state
        facts.append(("idle timeout", f"{format_duration(info.idle_timeout)} ({left})"))
    return facts


def status_text(info: SandboxInfo, containers: list[dict[str, str]] | None = None) -> str:
    """The status card as plain text."""
    lines = [f"Sandbox {info.name}: {info.state} ({info.reason})"]
    facts = _facts(info)
    for start in range(0, len(facts), 4):
        lines.append("  " + "   ".join(f"{key} {value}" for key, value in facts[start : start + 4]))
    if containers is not None:
        if not containers:
            lines.append("  inner containers: none running")
        else:
            lines.append(f"  inner containers ({len(containers)}):")
            lines.extend(f"    {c['Names']}  {c['Image']}  {c['Status']}" for c in containers)
    return "\n".join(lines)


def status_card(info: SandboxInfo, containers: list[dict[str, str]] | None = None) -> str:
    """The status card as HTML: name, state and reason, the spec, uptime, and the inner containers."""
    color = STATE_COLORS.get(info.state, "#757575")
    facts = "".join(
        f"<tr><th style='text-align: left; padding-right: 1em;'>{key}</th><td style='text-align: left;'><code>{html.escape(value)}</code></td></tr>"
        for key, value in _facts(info)
    )
    parts = [
        "<div style='border: 1px solid var(--jp-border-color1, #ddd); border-radius: 4px; padding: 0.6em 0.9em; "
        "display: inline-block; min-width: 28em;'>",
        f"<div><b>Sandbox</b> <code>{html.escape(info.name)}</code> "
        f"<span style='color: {color}; font-weight: bold;'>● {html.escape(info.state)}</span> "
        f"<span style='color: #757575;'>{html.escape(info.reason)}</span></div>",
        f"<table style='margin: 0.4em 0;'>{facts}</table>",
    ]
    if containers is not None:
        parts.append(_containers_html(containers))
    parts.append("</div>")
    return "".join(parts)


def _containers_html(containers: list[dict[str, str]]) -> str:
    if not containers:
        return "<div style='color: #757575;'>Inner containers: none running</div>"
    head = "".join(f"<th style='text-align: left;'>{field.upper()}</th>" for field in CONTAINER_FIELDS)
    rows = "".join(
        "<tr>" + "".join(f"<td style='text-align: left;'><code>{html.escape(c[field])}</code></td>" for field in CONTAINER_FIELDS) + "</tr>"
        for c in containers
    )
    return f"<div><b>Inner containers</b> ({len(containers)})</div><table><tr>{head}</tr>{rows}</table>"


def sandbox_bundle(sandbox: "Sandbox") -> dict[str, str]:
    """``text/plain`` and ``text/html`` for ``display(sandbox)``, from one status read."""
    try:
        info = sandbox.status()
    except SandboxError as error:
        return {"text/plain": str(error), "text/html": f"<pre>{html.escape(str(error))}</pre>"}
    containers = inner_containers(sandbox, info)
    return {"text/plain": status_text(info, containers), "text/html": status_card(info, containers)}


def _list_row(info: SandboxInfo, current: str | None) -> list[str]:
    name = ("* " if info.name == current else "  ") + info.name + (" (pool)" if info.pool else "")
    return [name, info.state, "yes" if info.docker else "no", info.image, info.network or "-", duration(info.uptime), info.owner or "-"]


def sandbox_list_bundle(infos: Iterable[SandboxInfo], current: str | None = None) -> dict[str, str]:
    """``%sandbox ls``: a table of sandboxes (the current one marked ``*``) as text and HTML."""
    infos = list(infos)
    rows = [_list_row(info, current) for info in infos]
    if not rows:
        text = "No sandboxes. Create one with %sandbox create --docker."
        return {"text/plain": text, "text/html": f"<p>{html.escape(text)}</p>"}
    columns = list(LIST_COLUMNS)
    if any(info.ttl is not None or info.idle_timeout is not None for info in infos):  # only then: outputs stay as they were
        columns.append("TIME LEFT")
        rows = [row + [time_left_text(info)] for row, info in zip(rows, infos)]
    table = [columns] + rows
    widths = [max(len(row[column]) for row in table) for column in range(len(columns))]
    text = "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table)
    head = "".join(f"<th style='text-align: left;'>{column}</th>" for column in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td style='text-align: left; color: {STATE_COLORS.get(row[1], 'inherit') if i == 1 else 'inherit'};'>{html.escape(cell.strip())}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return {"text/plain": text, "text/html": f"<table><tr>{head}</tr>{body}</table>"}


SNAPSHOT_COLUMNS = ("TAG", "SOURCE", "DOCKER", "SIZE", "AGE", "OWNER")


def snapshot_rows(snapshots: Iterable[Any], now: float | None = None) -> list[list[str]]:
    """One row of :data:`SNAPSHOT_COLUMNS` per snapshot (``%sandbox snapshots``, ``jupyter sandbox snapshots``)."""
    import time

    now = time.time() if now is None else now
    return [[s.tag, s.source, "yes" if s.spec.get("docker") else "no", f"{s.size / 1e6:.0f} MB", _age(now - s.created), s.owner] for s in snapshots]


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def snapshot_list_bundle(snapshots: Iterable[Any]) -> dict[str, str]:
    """``%sandbox snapshots``: a table of snapshots as text and HTML."""
    rows = snapshot_rows(snapshots)
    if not rows:
        text = "No snapshots. Take one with %sandbox snapshot [N] TAG."
        return {"text/plain": text, "text/html": f"<p>{html.escape(text)}</p>"}
    table = [list(SNAPSHOT_COLUMNS)] + rows
    widths = [max(len(row[column]) for row in table) for column in range(len(SNAPSHOT_COLUMNS))]
    text = "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table)
    head = "".join(f"<th style='text-align: left;'>{column}</th>" for column in SNAPSHOT_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td style='text-align: left;'>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return {"text/plain": text, "text/html": f"<table><tr>{head}</tr>{body}</table>"}


def port_link_bundle(name: str, port: int, link: str, note: str = "") -> dict[str, str]:
    """A clickable link to a sandbox port through the Jupyter server (HTML), and its plain-text twin."""
    text = f"{name}:{port} -> {link}" + (f"\n{note}" if note else "")
    markup = f'<a href="{html.escape(link)}" target="_blank" rel="noopener">{html.escape(name)}:{port}</a> <code>{html.escape(link)}</code>' + (
        f"<br><small>{html.escape(note)}</small>" if note else ""
    )
    return {"text/plain": text, "text/html": markup}


TERMINAL_MIME = "application/vnd.jupyter-sandbox.terminal+json"
"""Rendered by the Lab extension as a button that opens a terminal inside the sandbox; other frontends show the text."""


def shell_bundle(name: str, container_id: str) -> dict[str, Any]:
    """A button opening a terminal inside the sandbox (JupyterLab), and the commands for any other terminal."""
    from .shell import shell_hint

    text = f"A shell inside sandbox {name}: run in a terminal on this host\n  {shell_hint(name, container_id)}"
    return {TERMINAL_MIME: {"name": name}, "text/plain": text}


def show(bundle: dict[str, Any]) -> None:
    """Display a mime bundle in the current cell (text only outside a kernel)."""
    from IPython.display import display

    display(bundle, raw=True)
