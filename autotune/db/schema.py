"""The tables of the results DB (the ORM view; the migrations in migrations/versions/ own the DDL)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

STATUSES = ("ok", "compile", "fault", "timeout", "mismatch", "constraint")

# The columns that key a trial, in order (the unique constraint and the exchange format use them).
KEY_COLUMNS = (
    "target_fingerprint",
    "workload_key",
    "template",
    "template_hash",
    "runner",
    "cycle_model",
)
METRIC_COLUMNS = ("cycles", "instructions", "code_bytes", "rodata_bytes", "stack_bytes")


class Base(DeclarativeBase):
    pass


class Trial(Base):
    """One measured (or rejected) point of one template's space for one workload on one target."""

    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint(*KEY_COLUMNS, "params", name="uq_trial"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The key: everything that changes a result.
    target_fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    workload_key: Mapped[str] = mapped_column(String(64), index=True)
    template: Mapped[str] = mapped_column(String(64))
    template_hash: Mapped[str] = mapped_column(String(64))
    runner: Mapped[str] = mapped_column(String(32))
    cycle_model: Mapped[str] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text)  # canonical JSON
    # What it is, for people reading the DB.
    target: Mapped[str] = mapped_column(String(64))
    toolchain: Mapped[str] = mapped_column(String(256))
    workload: Mapped[str] = mapped_column(Text)  # JSON description
    # The value.
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    cycles: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    instructions: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    code_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rodata_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stack_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    is_baseline: Mapped[bool] = mapped_column(default=False)
    # Provenance.
    tool_version: Mapped[str] = mapped_column(String(32))
    host: Mapped[str] = mapped_column(String(128))
    created: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)


class Verification(Base):
    """This machine verified a trial bit-exact with one layer's values.

    The token is an HMAC with this machine's own key over everything verified, so a
    row copied from another machine or forged in a shared DB never matches."""

    __tablename__ = "verifications"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    created: Mapped[float] = mapped_column(Float)


class Artifact(Base):
    """A result that is not a trial (a whole-model run of an emitted library), keyed by a
    hash of everything that produced it and sealed with the machine key that made it."""

    __tablename__ = "artifacts"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(Text)  # JSON
    tool_version: Mapped[str] = mapped_column(String(32))
    created: Mapped[float] = mapped_column(Float)
    token: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Claim(Base):
    """A variant some process is measuring now: others skip it instead of measuring it too.

    `point` hashes the trial's key and parameters; `study` hashes the workload on the
    target, so a process can wait for every claim of a workload to end."""

    __tablename__ = "claims"

    point: Mapped[str] = mapped_column(String(64), primary_key=True)
    study: Mapped[str] = mapped_column(String(64), index=True)
    owner: Mapped[str] = mapped_column(String(128))
    heartbeat: Mapped[float] = mapped_column(Float)


class Job(Base):
    """One workload of a submitted model, tuned by `autotune worker` processes that share
    its Optuna study (named `study`) through the DB."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study: Mapped[str] = mapped_column(String(200), unique=True)
    model_sha256: Mapped[str] = mapped_column(String(64))
    model: Mapped[bytes] = mapped_column(LargeBinary)  # the .tflite: workers rebuild the layer
    layer_index: Mapped[int] = mapped_column(Integer)
    target: Mapped[str] = mapped_column(String(64))
    target_fingerprint: Mapped[str] = mapped_column(String(64))
    trials: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending, done
    created: Mapped[float] = mapped_column(Float)
