"""The `cxrbank` command line: a thin group whose subcommands load only when called."""

from __future__ import annotations

import importlib

import click

from cxrbank import __version__

# name -> (module, attribute, one-line help). Commands live in cxrbank/commands/*.py and are
# imported only when run, so `cxrbank --help` and `cxrbank ingest` never import torch.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "import": ("cxrbank.commands.collection", "import_cmd",
               "Adopt a covid-chestxray-dataset checkout into a collection."),
    "validate": ("cxrbank.commands.collection", "validate_cmd",
                 "Check metadata.csv and the image files; exit 1 on errors."),
    "stats": ("cxrbank.commands.collection", "stats_cmd",
              "Label table and counts by modality, view, sex, source, licence."),
    "figures": ("cxrbank.commands.figures", "figures_cmd",
                "Figures and captions of a PDF or JATS file to DIR/figures.json."),
    "facts": ("cxrbank.commands.extract", "facts_cmd",
              "Patient facts found in a caption or case text, as JSON."),
    "imagetype": ("cxrbank.commands.extract", "imagetype_cmd",
                  "Classify images as X-ray, CT or other, one JSON line per file."),
    "ingest": ("cxrbank.commands.ingest", "ingest_cmd",
               "Resolve DOIs (or read local PDF/JATS files) and add their chest images."),
    "crawl": ("cxrbank.commands.crawl", "crawl_group",
              "Incremental crawls of teaching-case sites (radiopaedia)."),
    "dedup": ("cxrbank.commands.curation", "dedup_cmd",
              "Find exact and near-duplicate images; --apply removes them."),
    "labels": ("cxrbank.commands.curation", "labels_cmd",
               "The label vocabulary with counts."),
    "relabel": ("cxrbank.commands.curation", "relabel_cmd",
                "Batch-rename a finding, logged."),
    "split": ("cxrbank.commands.split", "split_cmd",
              "Patient-level train/val/test partitions and k folds."),
    "train": ("cxrbank.commands.models", "train_cmd",
              "Train a classifier on the collection (needs the train extra)."),
    "evaluate": ("cxrbank.commands.models", "evaluate_cmd",
                 "Evaluate a checkpoint; write metrics and a model card."),
    "issue": ("cxrbank.commands.release", "issue_cmd",
              "Ingest what a GitHub issue asks to add; write a markdown reply."),
    "release": ("cxrbank.commands.release", "release_cmd",
                "Freeze the collection as a versioned release, or --verify one."),
    "demo": ("cxrbank.commands.release", "demo_cmd",
             "The whole loop offline on bundled inputs."),
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attr, _ = COMMANDS[cmd_name]
        module = importlib.import_module(module_name)
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cxrbank")
def main() -> None:
    """cxrbank builds open chest X-ray and CT collections from papers and teaching cases,
    curates them, partitions them by patient and trains classifiers on them.

    Every command takes --root DIR (default: the current directory). Exit status: 0 on
    success, 1 when some of the work failed, 2 on a usage error.
    """
