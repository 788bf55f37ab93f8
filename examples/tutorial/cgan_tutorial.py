"""The classic MNIST cGAN tutorial, written the way those tutorials write it: two MLP classes, a
DataLoader of ToTensor + Normalize images, BCELoss, Adam(2e-4, betas (0.5, 0.999)), one D step then
one G step per batch. It ends, as they do, with

    torch.save(generator.state_dict(), 'generator.pth')

which is what `ganpack export generator.pth --from tutorial-cgan -o NAME.onnx` packages. Nothing
here uses gan_pack except reading the IDX files offline.

    python examples/tutorial/cgan_tutorial.py --data-dir ../shared/data/mnist --epochs 1 --out generator.pth
"""

import argparse
import time

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.label_emb = nn.Embedding(10, 10)

        def block(in_features, out_features):
            return [nn.Linear(in_features, out_features), nn.LeakyReLU(0.2, inplace=True),
                    nn.BatchNorm1d(out_features)]

        self.model = nn.Sequential(*block(110, 256), *block(256, 512), *block(512, 1024), nn.Linear(1024, 784),
                                   nn.Tanh())

    def forward(self, z, labels):
        x = torch.cat((z, self.label_emb(labels)), -1)
        return self.model(x).view(x.size(0), 1, 28, 28)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.label_emb = nn.Embedding(10, 10)
        self.model = nn.Sequential(
            nn.Linear(794, 1024), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(0.3),
            nn.Linear(1024, 512), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(0.3),
            nn.Linear(512, 256), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(0.3),
            nn.Linear(256, 1), nn.Sigmoid())

    def forward(self, x, labels):
        x = torch.cat((x.view(x.size(0), 784), self.label_emb(labels)), -1)
        return self.model(x).squeeze()


class MNIST(Dataset):
    """torchvision's MNIST, read from the IDX files of --data-dir (offline)."""

    def __init__(self, data_dir, limit=None):
        from gan_pack.core.idx import load_idx_split

        images, labels = load_idx_split(data_dir, "mnist", "train")
        self.images, self.labels = images[:limit, 0], labels[:limit]
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i], mode="L")), int(self.labels[i])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--out", default="generator.pth")
    args = parser.parse_args()
    torch.manual_seed(0)
    np.random.seed(0)

    generator, discriminator = Generator(), Discriminator()
    criterion = nn.BCELoss()
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loader = DataLoader(MNIST(args.data_dir, args.limit), batch_size=64, shuffle=True, drop_last=True)

    started = time.time()
    for epoch in range(args.epochs):
        for i, (images, labels) in enumerate(loader):
            batch = images.size(0)
            real, fake_target = torch.ones(batch), torch.zeros(batch)

            d_optimizer.zero_grad()
            real_loss = criterion(discriminator(images, labels), real)
            z = torch.randn(batch, 100)
            fake_labels = torch.randint(0, 10, (batch,))
            fake_images = generator(z, fake_labels)
            fake_loss = criterion(discriminator(fake_images.detach(), fake_labels), fake_target)
            d_loss = real_loss + fake_loss
            d_loss.backward()
            d_optimizer.step()

            g_optimizer.zero_grad()
            g_loss = criterion(discriminator(fake_images, fake_labels), real)
            g_loss.backward()
            g_optimizer.step()

            if i % 200 == 0:
                print(f"epoch {epoch + 1} step {i}/{len(loader)} d_loss {d_loss.item():.4f} "
                      f"g_loss {g_loss.item():.4f} ({time.time() - started:.0f} s)", flush=True)

    torch.save(generator.state_dict(), args.out)
    print(f"saved {args.out} after {args.epochs} epoch(s), {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
