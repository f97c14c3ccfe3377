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
