"""The baselines' table: one indexed lookup to read, one insert to write, and nothing else."""

from django.db import models


class Row(models.Model):
    key = models.CharField(max_length=64, unique=True)
    body = models.TextField()

    def __str__(self) -> str:
        return self.key
