"""`stdo`: one entry point with the stage commands as subcommands (stdo cluster == stdo-cluster)."""

from __future__ import annotations

import click

import stdo
from stdo.cluster.cli import cluster_command
from stdo.deliver.cli import deliver_command
from stdo.export.cli import export_command
from stdo.fleet.cli import fleet_command
from stdo.play.cli import play_command
from stdo.train.cli import train_command
from stdo.train.general_cli import general_command
from stdo.upscale.cli import upscale_command
from stdo.views.cli import views_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(stdo.__version__, prog_name="stdo")
def main() -> None:
    """Spatial-temporal data overfitting for neural-enhanced video delivery.

    The flow: cluster (video -> RUN with a chunk map) -> train -> export -> play; deliver runs the first
    three at a few LR CRFs and keeps the best played quality within a byte budget.
    """


main.add_command(cluster_command)
main.add_command(train_command)
main.add_command(export_command)
main.add_command(play_command)
main.add_command(deliver_command)
main.add_command(upscale_command)
main.add_command(general_command)
main.add_command(fleet_command)
main.add_command(views_group)
