"""GitHub issues as addition requests: read an Actions event file or fetch one issue over the REST API."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from extract.issuetext import decode_text

GITHUB_API_URL_ENV = "CXRBANK_GITHUB_API_URL"
DEFAULT_GITHUB_API_URL = "https://api.github.com"
TOKEN_ENV = "GITHUB_TOKEN"
MAX_EVENT_BYTES = 2 * 1024 * 1024


class IssueError(Exception):
    """The issue cannot be read; the message never contains a token."""


@dataclass
class Issue:
    number: int
    title: str
    body: str
    labels: list[str] = field(default_factory=list)
    url: str = ""

    @property
    def text(self) -> str:
        return f"{self.title}\n\n{self.body}"


def _issue_from_json(data: dict) -> Issue:
    if not isinstance(data, dict) or "number" not in data:
        raise IssueError("not a GitHub issue object (no 'number')")
    labels = [label.get("name", "") if isinstance(label, dict) else str(label)
              for label in data.get("labels") or []]
    try:
        number = int(data["number"])
    except (TypeError, ValueError) as exc:
        raise IssueError(f"issue number {data['number']!r} is not a number") from exc
    return Issue(number=number, title=decode_text(data.get("title") or ""),
                 body=decode_text(data.get("body") or ""), labels=labels,
                 url=str(data.get("html_url") or ""))


def read_event(path: Path) -> Issue:
    """The issue of a GitHub Actions `issues` (or `issue_comment`) event JSON file."""
    data = path.read_bytes()[:MAX_EVENT_BYTES]
    try:
        event = json.loads(data.decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        raise IssueError(f"{path.name}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(event, dict) or "issue" not in event:
        raise IssueError(f"{path.name}: not an issues event (no 'issue' object)")
    return _issue_from_json(event["issue"])


def fetch_issue(repo: str, number: int, *, contact: str, timeout: float = 30.0) -> Issue:
    """One issue over the REST API; the token comes from $GITHUB_TOKEN and is never shown."""
    import requests  # noqa: PLC0415 - only this path talks to GitHub

    owner, _, name = repo.partition("/")
    if not owner or not name or not all(part.replace("-", "").replace("_", "").replace(".", "").isalnum()
                                        for part in (owner, name)):
        raise IssueError(f"{repo!r} is not OWNER/NAME")
    base = (os.environ.get(GITHUB_API_URL_ENV) or DEFAULT_GITHUB_API_URL).rstrip("/")
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": f"cxrbank (mailto:{contact})",
    }
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{base}/repos/{owner}/{name}/issues/{int(number)}"
    try:
        response = requests.get(url, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        raise IssueError(f"GitHub API unreachable for {repo}#{number}: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise IssueError(f"GitHub API answered HTTP {response.status_code} for {repo}#{number}")
    try:
        return _issue_from_json(response.json())
    except ValueError as exc:
        raise IssueError(f"GitHub API answered something that is not JSON for {repo}#{number}") from exc
