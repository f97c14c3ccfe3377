"""`cxrbank release`, `issue` and `demo`: versioned releases and the additions loop."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import click

from cxrbank.commands.collection import open_collection
from cxrbank.commands.common import (
    CxrbankError,
    emit_json,
    json_option,
    root_option,
    say,
    say_error,
)


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
    from curation.release import (  # noqa: PLC0415
        ReleaseError,
        check_version,
        make_release,
        verify_release,
    )

    try:
        check_version(version)
    except ReleaseError:
        raise click.BadParameter(
            f"{version!r} is not a release name: digits separated by dots, optionally a leading"
            " 'v' and a '-' or '+' suffix of letters, digits and dots (e.g. v0.1, 1.2.0-rc1)",
            param_hint="'VERSION'") from None
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
    from cxrbank.additions import (  # noqa: PLC0415
        handle_issue,
        not_fetched,
        not_fetched_lines,
        reply_markdown,
        request_notes,
        write_thumbnails,
    )
    from cxrbank.collection import Collection  # noqa: PLC0415
    from cxrbank.commands.ingest import scrapy_overrides  # noqa: PLC0415

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
    if isinstance(issue.number, bool) or not isinstance(issue.number, int) or issue.number < 1:
        where = event_file.name if event_file else repo
        raise CxrbankError(f"{where}: issue number {issue.number!r} is not a positive integer")
    result = handle_issue(root, issue.number, issue.text, address, overrides=scrapy_overrides(),
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
            "refused": [{"url": u, "why": w} for u, w in not_fetched(result.request)],
            "notes": request_notes(result.request),
            "reply": str(reply_file) if reply_file else None,
        })
    else:
        for item in result.items:
            detail = f": {item.reason}" if item.reason else ""
            click.echo(f"{item.kind} {item.ref}: {item.outcome}{detail} ({len(item.rows)} rows)")
        for ref, why in not_fetched_lines(result.request):
            say(f"not fetched: {ref} ({why})" if why else f"not fetched: {ref}")
        for note in request_notes(result.request):
            say(note)
        if result.request.empty():
            read = f" in the first {len(issue.text) - result.request.ignored_chars} characters" \
                if result.request.ignored_chars else ""
            click.echo(f"issue #{issue.number}: nothing to add{read} (no DOI, case URL or allowed"
                       " PDF link)")
    for item in result.items:  # a failed DOI's Error line came from its ingest already
        if item.outcome == "error" and item.kind != "doi":
            reason = (item.reason or "failed").removeprefix(f"{item.ref}: ")
            say_error(f"{item.kind} {item.ref}: {reason}")
    if result.failed:
        raise SystemExit(1)


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("cxrbank-demo"), show_default=True,
              help="Folder for the demo's collection and artefacts (replaced if it is a demo's).")
@click.option("--epochs", type=click.IntRange(1, 50), default=8, show_default=True)
@json_option
def demo_cmd(out: Path, epochs: int, as_json: bool) -> None:
    """The whole loop offline on generated inputs: serve a small fixture web on 127.0.0.1,
    take an issue naming two DOIs, ingest, dedup, validate, split, release v0.1, train the tiny
    model on CPU, evaluate, and print where every artefact is."""
    from cxrbank.cli import main  # noqa: PLC0415
    from cxrbank.demo import DemoError, run_demo  # noqa: PLC0415

    def run_command(args: list[str]) -> int:
        """One stage, as the CLI runs it; its report goes to stderr, the demo's to stdout."""
        try:
            with contextlib.redirect_stdout(sys.stderr):
                main.main(args=args, prog_name="cxrbank", standalone_mode=False)
        except click.ClickException as exc:
            exc.show()
            return exc.exit_code
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 1
        return 0

    started = time.monotonic()
    try:
        result = run_demo(out, run_command, say, epochs=epochs)
    except DemoError as exc:
        raise CxrbankError(str(exc)) from exc
    seconds = round(time.monotonic() - started, 1)
    if as_json:
        emit_json({"seconds": seconds, "stages": [s.__dict__ for s in result.stages],
                   "artefacts": {k: str(v) for k, v in result.artefacts.items()},
                   "failed": [s.name for s in result.failed]})
    else:
        click.echo(f"\ncxrbank demo finished in {seconds} s. Artefacts:")
        width = max(len(k) for k in result.artefacts)
        for name, path in result.artefacts.items():
            state = "" if path.exists() else "  (missing)"
            click.echo(f"  {name.ljust(width)}  {path}{state}")
        for stage in result.failed:
            click.echo(f"Error: stage '{stage.name}' exited {stage.exit_code}", err=True)
    if result.failed:
        raise SystemExit(1)
