"""Two-process gloo run of the handlers, launched by ``test_ddp.py`` as a script: ``python ddp_worker.py OUT_DIR``.

Each rank trains a DDP-wrapped tiny net on its shard (9 samples, so the DistributedSampler pads one),
with checkpoint-mode VoG, online VoG and the per-sample loss attached. Rank 0 also records the
single-process reference (every sample's gradient maps and losses after every epoch, from the unwrapped
net). Every rank dumps its results to ``OUT_DIR/result{rank}.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

NUM_SAMPLES, MAX_EPOCHS, WORLD = 9, 3, 2


def run(rank: int, out_dir: str) -> None:
    from handler_testlib import ce_mean, ce_per_sample, make_net, make_samples
    from ignite.engine import Events
    from monai.data import DistributedSampler
    from monai.engines import SupervisedTrainer

    from monai_noisylabel.detection import input_gradients
    from monai_noisylabel.handlers import SampleLossHandler, VarianceOfGradientsHandler

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out_dir}/pg", rank=rank, world_size=WORLD)
    samples = make_samples(NUM_SAMPLES)
    net = make_net()
    ddp = torch.nn.parallel.DistributedDataParallel(net)

    def loader(shuffle: bool) -> torch.utils.data.DataLoader:
        sampler = DistributedSampler(samples, shuffle=shuffle, num_replicas=WORLD, rank=rank)
        return torch.utils.data.DataLoader(samples, batch_size=2, sampler=sampler)

    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=MAX_EPOCHS,
        train_data_loader=loader(True),
        network=ddp,
        optimizer=torch.optim.SGD(ddp.parameters(), lr=0.5),
        loss_function=ce_mean,
    )
    reference: dict[str, list] = {"maps": [], "losses": []}
    if rank == 0:
        x = torch.stack([s["image"] for s in samples])
        y = torch.stack([s["label"] for s in samples])

        @trainer.on(Events.EPOCH_COMPLETED)
        def _record(engine):
            reference["maps"].append(input_gradients(net, x, y, target="loss", loss_fn=ce_per_sample).tolist())
            with torch.no_grad():
                reference["losses"].append(ce_per_sample(net.eval()(x), y).tolist())
            net.train()

    own_dir = Path(out_dir) / f"rank{rank}"
    vog = VarianceOfGradientsHandler(loader(False), output_dir=own_dir)
    online = VarianceOfGradientsHandler(mode="online")
    loss = SampleLossHandler(loader(False), loss_fn=ce_per_sample, window="last", output_dir=own_dir)
    for h in (vog, online, loss):
        h.attach(trainer)
    trainer.run()
    keys = ("vog", "loss", "gmm_noisy_prob", "combined", "flagged")
    result = {
        "table": {i: {k: row[k] for k in keys} for i, row in trainer.state.label_scores.items()},
        "vog": vog.scores(),
        "online": online.scores(),
        "loss": loss.scores(),
        "pool": vog.pool_used,
        "reference": reference,
    }
    (Path(out_dir) / f"result{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(run, args=(sys.argv[1],), nprocs=WORLD, join=True)
