"""`cxrbank release`, `issue` and `demo`: versioned releases and the additions loop."""

from __future__ import annotations

from pathlib import Path

import click

from cxrbank.commands.collection import open_collection
from cxrbank.commands.common import CxrbankError, emit_json, json_option, root_option, say


@click.command("release")
@click.argument("version")
@click.option("--notes", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Markdown to put at the top of the release's changelog.")
@click.option("--verify", is_flag=True, help="Check the checkout against VERSION's manifest instead.")
@root_option
@json_option
def release_cmd(version: str, notes: Path | None, verify: bool, root: Path, as_json: bool) -> None:
    """Freeze the collection as releases/VERSION: manifest.json (every file with sha256 and
    size, row count, label stats, split hash, tool version), a copy of metadata.csv and the
    split files, and CHANGELOG.md against the previous release. With --verify, check that
    every file of VERSION is present and unchanged (exit 1 otherwise)."""
    from curation.release import ReleaseError, make_release, verify_release  # noqa: PLC0415

    collection = open_collection(root)
    try:
        if verify:
            result = verify_release(collection, version)
            if as_json:
                emit_json({"version": version, "checked": result.checked,
                           "problems": result.problems})
            else:
                for problem in result.problems:
                    click.echo(f"Error: {problem}")
                state = "OK" if not result.problems else f"{len(result.problems)} problems"
                click.echo(f"release {version}: {result.checked} files checked, {state}")
            if result.problems:
                raise SystemExit(1)
            return
        manifest = make_release(collection, version, notes.read_text() if notes else "")
    except ReleaseError as exc:
        raise CxrbankError(str(exc)) from exc
    where = collection.root / "releases" / version
    if as_json:
        emit_json({"version": version, "path": str(where), "rows": manifest["rows"],
                   "files": len(manifest["files"]), "split_hash": manifest["split_hash"]})
        return
    click.echo(f"release {version}: {manifest['rows']} rows, {manifest['patients']} patients,"
               f" {len(manifest['files'])} files -> {where}")
    say(f"changelog: {where / 'CHANGELOG.md'}")
    say(f"suggested tag: git tag -a data-{version} -m 'cxrbank data release {version}'")


@click.command("issue")
@click.option("--event", "event_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A GitHub Actions `issues` event JSON ($GITHUB_EVENT_PATH).")
@click.option("--repo", metavar="OWNER/NAME", help="Fetch the issue from this repository ...")
@click.option("--number", type=click.IntRange(1), help="... with this number (token: $GITHUB_TOKEN).")
@click.option("--reply", "reply_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the markdown reply here (thumbnails beside it).")
@click.option("--force", is_flag=True, help="Redo papers ingested before.")
@click.option("--contact", metavar="EMAIL",
              help="Your e-mail for the services' polite pools (default: $CXRBANK_CONTACT).")
@root_option
@json_option
def issue_cmd(event_file: Path | None, repo: str | None, number: int | None,
              reply_file: Path | None, force: bool, contact: str | None, root: Path,
              as_json: bool) -> None:
    """Add what a "Publication to add" issue names: DOIs, Radiopaedia case URLs and PDF links
    on an allow-list of hosts, with optional hints ("Figure 2", "patient 2", "finding: SARS").

    The issue text is untrusted: nothing in it is executed, and no URL off the allow-list or
    pointing at a private address is fetched. Exit 1 when some request failed.
    """
    from crawler.github import IssueError, fetch_issue, read_event  # noqa: PLC0415
    from crawler.settings import ContactMissing, contact_address  # noqa: PLC0415
    from cxrbank.additions import handle_issue, reply_markdown, write_thumbnails  # noqa: PLC0415
    from cxrbank.collection import Collection  # noqa: PLC0415
    from cxrbank.commands.ingest import _scrapy_overrides  # noqa: PLC0415

    if (event_file is None) == (repo is None) or (repo is not None and number is None):
        raise click.UsageError("give --event FILE, or --repo OWNER/NAME with --number N")
    try:
        address = contact_address(contact)
    except ContactMissing as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        issue = read_event(event_file) if event_file else fetch_issue(repo or "", number or 0,
                                                                       contact=address)
    except (IssueError, OSError) as exc:
        raise CxrbankError(str(exc)) from exc
    result = handle_issue(root, issue.number, issue.text, address, overrides=_scrapy_overrides(),
                          force=force)
    reply = None
    if reply_file is not None:
        thumbs_dir = reply_file.with_name(f"{reply_file.stem}-thumbs")
        thumbs = write_thumbnails(Collection(root), result, thumbs_dir)
        reply = reply_markdown(result, thumbs, f"{thumbs_dir.name}/")
        reply_file.write_text(reply, encoding="utf-8")
    if as_json:
        emit_json({
            "issue": issue.number,
            "items": [{"kind": i.kind, "ref": i.ref, "outcome": i.outcome, "reason": i.reason,
                       "rows": [r["filename"] for r in i.rows]} for i in result.items],
            "refused": [{"url": u, "why": w} for u, w in result.request.refused],
            "reply": str(reply_file) if reply_file else None,
        })
    else:
        for item in result.items:
            detail = f": {item.reason}" if item.reason else ""
            click.echo(f"{item.kind} {item.ref}: {item.outcome}{detail} ({len(item.rows)} rows)")
        for url, why in result.request.refused:
            say(f"not fetched: {url[:200]} ({why})")
        if result.request.empty():
            click.echo(f"issue #{issue.number}: nothing to add (no DOI, case URL or allowed PDF link)")
    if result.failed:
        raise SystemExit(1)
