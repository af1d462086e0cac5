"""The process runtime: load diagrams, start records, complete tasks, fire timers.

Every door (REST API, web pages, CLI, worker, scenario tests) calls these methods; none
re-implements a rule. Each public method is one unit of work: the task row, the record's
data and engine state, the signature and the audit entries commit together or not at all.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, joinedload

from forms import FormError, FormRegistry
from models import (
    ApiToken,
    AuditEntry,
    Document,
    DocumentStatus,
    ProcessDefinition,
    ProcessVersion,
    Record,
    RecordCounter,
    RecordLink,
    RecordStatus,
    Role,
    Signature,
    Task,
    TaskStatus,
    TimerJob,
    User,
    UserRole,
    VersionStatus,
    audit_event,
    utcnow,
)
from signatures import credentials
from signatures import service as signing

from . import services
from . import state as engine_state
from .actors import require_role
from .db import Database, contains
from .exceptions import (
    AccountLocked,
    CellqmsError,
    Conflict,
    Forbidden,
    NotAuthenticated,
    NotFound,
    ProcessRejected,
    UnsafeExpression,
    ValidationFailed,
    WrongPassword,
)
from .expressions import Clock, evaluate, make_script_engine, parse_datetime
from .parser import ParsedDiagram, manual_start, parse_diagram, properties
from .permissions import CREATOR, can_see_record, completed_by, why_not
from .settings import Settings

log = logging.getLogger("cellqms.engine")
# The audit reason of every change a process step makes; signatures tell such changes (a rework
# round) from edits outside the process by it, together with the absence of a correction.
PROCESS_STEP = "process step:"
BASE_ROLE = "Employee"
ADMIN_ROLE = "Admin"  # manages accounts, roles and passwords (URS-SEC-05)

_ENGINE_ERRORS = (SpiffWorkflowException, UnsafeExpression)
_TIMER_EVENT_SUFFIXES = ("TimeDateEventDefinition", "TimerEventDefinition")


@dataclass
class LoadResult:
    key: str
    version: int
    sha256: str
    created: bool


@dataclass
class SpecInfo:
    """A parsed diagram version, kept in memory: spec, lanes (roles) and start event properties."""

    spec: object
    subprocess_specs: dict
    roles: set
    start_properties: dict
    start_lane: str | None

    @property
    def manual_start(self) -> bool:
        """False when only the system starts the process (start event property manualStart=false)."""
        return manual_start(self.start_properties)


class Runtime:
    """One per process: holds the database, the form registry, parsed specs and live workflows."""

    def __init__(self, settings: Settings | None = None, db: Database | None = None, clock: Clock | None = None):
        self.settings = settings or Settings()
        self.db = db or Database(self.settings.database_url)
        self.forms = FormRegistry(self.settings.forms_dir)
        self.clock = clock or Clock()
        self.script_engine = make_script_engine(self.clock)
        self.cache = engine_state.WorkflowCache()
        self._specs: dict[int, SpecInfo] = {}
        self._specs_lock = threading.Lock()

    # ------------------------------------------------------------------ identity
    def authenticate(self, username: str, password: str, purpose: str = "login") -> User:
        """Check credentials; failures are counted and audited even though the caller gets an error."""
        with self.db.unit_of_work() as session:
            result = credentials.check_credentials(
                session, username, password, purpose=purpose,
                max_failures=self.settings.max_failed_logins, lockout_minutes=self.settings.lockout_minutes)
        if result.refusal == "locked":
            raise AccountLocked(_locked_message(result.locked_until, self.settings.lockout_minutes),
                                details={"locked_until": result.locked_until.isoformat()})
        if result.refusal == "wrong_password" and purpose == "signature":
            raise WrongPassword("The password is not correct; nothing was signed or saved.")
        if result.refusal:
            raise NotAuthenticated("The username or password is not correct.")
        return result.user

    def issue_token(self, username: str, password: str) -> tuple[str, dt.datetime]:
        """Authenticate and create an API bearer token (only its hash is stored)."""
        import hashlib
        import secrets

        user = self.authenticate(username, password, purpose="token")
        token = secrets.token_urlsafe(32)
        expires = utcnow() + dt.timedelta(hours=self.settings.token_hours)
        with self.db.unit_of_work(user) as session:
            session.add(ApiToken(token_sha256=hashlib.sha256(token.encode()).hexdigest(), user_id=user.id,
                                 expires_at=expires))
        return token, expires

    def user_for_token(self, token: str) -> User:
        import hashlib

        with self.db.sessionmaker() as session:
            row = session.scalar(select(ApiToken).where(
                ApiToken.token_sha256 == hashlib.sha256(token.encode()).hexdigest()))
            if row is None or row.revoked or row.expires_at < utcnow() or not row.user.active:
                raise NotAuthenticated("The API token is missing, expired or not valid.")
            if row.user.locked_until is not None and row.user.locked_until > utcnow():
                # A lock-out (e.g. repeated wrong signing passwords) stops every door, tokens included.
                raise AccountLocked(_locked_message(row.user.locked_until, self.settings.lockout_minutes))
            user = row.user
            _ = user.roles
            return user

    def user_by_username(self, username: str) -> User:
        with self.db.sessionmaker() as session:
            user = session.scalar(select(User).where(User.username == username))
            if user is None:
                raise NotFound(f"No user '{username}'.")
            _ = user.roles
            return user

    # ------------------------------------------------------------------ users and roles
    def add_user(self, actor, username: str, full_name: str, password: str, roles: list[str],
                 email: str | None = None) -> User:
        """Create an account (URS-SEC-01); usernames are unique and never reused."""
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,63}", username):
            raise ValidationFailed([{"path": "username", "message":
                                     "Use 2-64 lower-case letters, digits, dots, dashes or underscores."}])
        problem = credentials.password_problem(password)
        if problem:
            raise ValidationFailed([{"path": "password", "message": problem}])
        with self.db.unit_of_work(actor) as session:
            require_role(session, actor, {ADMIN_ROLE}, "Creating user accounts")
            if session.scalar(select(User.id).where(User.username == username)) is not None:
                raise Conflict(f"The username '{username}' exists already (user names are never reused).")
            user = User(username=username, full_name=full_name, email=email,
                        password_hash=credentials.hash_password(password))
            session.add(user)
            session.flush()
            # Every account holds the base role "Employee": tasks meant for any one person (reading a
            # new SOP, an action assigned by name) live in that lane and are reserved by `assignee`.
            self._set_roles(session, user, list(dict.fromkeys([*roles, BASE_ROLE])))
            session.flush()
            _ = user.roles
        return user

    def set_roles(self, actor, username: str, roles: list[str]) -> User:
        """Set a person's roles to exactly these (plus Employee); an administrator's act, audited."""
        with self.db.unit_of_work(actor) as session:
            require_role(session, actor, {ADMIN_ROLE}, "Changing roles")
            user = self._user(session, username)
            self._set_roles(session, user, list(dict.fromkeys([*roles, BASE_ROLE])))
            session.flush()
            session.refresh(user)
            _ = user.roles
        return user

    def _set_roles(self, session: Session, user: User, roles: list[str]) -> None:
        wanted = set(roles)
        existing = {ur.role.name: ur for ur in session.scalars(select(UserRole).where(UserRole.user_id == user.id))}
        for name in wanted - set(existing):
            role = session.scalar(select(Role).where(Role.name == name))
            if role is None:
                role = Role(name=name)
                session.add(role)
                session.flush()
            session.add(UserRole(user_id=user.id, role_id=role.id))
            audit_event(session, "role_granted", entity="users", entity_id=user.id, new=name,
                        field="roles")
        for name in set(existing) - wanted:
            session.delete(existing[name])
            audit_event(session, "role_revoked", entity="users", entity_id=user.id, old=name, field="roles")
        session.expire(user, ["roles"])
        # URS-TRN-01: a new role brings its required trainings; a role given up releases the open
        # assignments no remaining role needs (completed trainings stay as history).
        from . import training

        for name in sorted(wanted - set(existing)):
            training.assign_for_role(session, self, user, name)
        for name in sorted(set(existing) - wanted):
            training.release_for_role(session, user, name)

    def set_timezone(self, actor, username: str, zone: str) -> None:
        """The zone a person reads times in (URS-OPS-03); their own choice, or an administrator's."""
        import zoneinfo

        zone = (zone or "").strip()
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValidationFailed([{"path": "timezone", "message":
                                     f"'{zone}' is not a known time zone (e.g. Europe/Berlin, America/New_York)."}]
                                   ) from None
        with self.db.unit_of_work(actor) as session:
            user = self._user(session, username)
            if getattr(actor, "id", None) != user.id:
                require_role(session, actor, {ADMIN_ROLE}, "Setting another person's time zone")
            user.timezone = zone

    def deactivate_user(self, actor, username: str, reason: str) -> list[str]:
        """Deactivate an account at once (access is never held up). Returns the numbers of the
        active documents the person still owns: Document Control must name new owners, and until
        then those documents' periodic reviews wait (engine.documents.reassign_owner)."""
        with self.db.unit_of_work(actor, reason=reason) as session:
            require_role(session, actor, {ADMIN_ROLE}, "Deactivating accounts")
            user = self._user(session, username)
            user.active = False
            return list(session.scalars(select(Document.number).where(
                Document.owner_id == user.id, Document.status == DocumentStatus.ACTIVE).order_by(Document.number)))

    def set_password(self, actor, username: str, password: str, must_change: bool = False) -> None:
        problem = credentials.password_problem(password)
        if problem:
            raise ValidationFailed([{"path": "password", "message": problem}])
        with self.db.unit_of_work(actor) as session:
            user = self._user(session, username)
            if getattr(actor, "id", None) != user.id:  # a reset, not one's own change
                require_role(session, actor, {ADMIN_ROLE}, "Resetting another person's password")
            user.password_hash = credentials.hash_password(password)
            user.password_changed_at = utcnow()
            user.must_change_password = must_change
            user.failed_logins = 0
            user.locked_until = None

    @staticmethod
    def _user(session: Session, username: str) -> User:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"No user '{username}'.")
        return user

    # ------------------------------------------------------------------ diagrams
    def load_processes(self, actor=None, directory: Path | None = None) -> list[LoadResult]:
        """Load every processes/*.bpmn; a new released version only when the file's hash changed."""
        directory = Path(directory or self.settings.processes_dir)
        results = []
        for path in sorted(directory.glob("*.bpmn")):
            data = path.read_bytes()
            results.append(self._load_one(actor, path.stem, data, str(path.name), VersionStatus.RELEASED))
        return results

    def create_draft_version(self, actor, key: str, data: bytes) -> ProcessVersion:
        """A process owner submits a new diagram version (API); it is parsed, checked and kept as draft."""
        if getattr(actor, "id", None) is not None:
            with self.db.sessionmaker() as session:
                roles = session.get(User, actor.id).role_names
            if not roles & {"Process Owner", "Admin"}:
                raise Forbidden("Submitting a diagram version needs the role 'Process Owner'.", code="not_in_role")
        result = self._load_one(actor, key, data, f"{key}.bpmn", VersionStatus.DRAFT, always_new=True)
        with self.db.sessionmaker() as session:
            return session.scalar(select(ProcessVersion).join(ProcessDefinition).where(
                ProcessDefinition.key == key, ProcessVersion.version == result.version))

    def _load_one(self, actor, key: str, data: bytes, filename: str, status: VersionStatus,
                  always_new: bool = False) -> LoadResult:
        parsed = parse_diagram(data, filename=filename, expected_process_id=key,
                               max_bytes=self.settings.max_bpmn_bytes)
        self._check_forms(parsed, filename)
        with self.db.unit_of_work(actor) as session:
            definition = session.scalar(select(ProcessDefinition).where(ProcessDefinition.key == key))
            if definition is None:
                definition = ProcessDefinition(key=key, name=parsed.name, record_prefix=parsed.record_prefix)
                session.add(definition)
                session.flush()
            latest = session.scalar(select(ProcessVersion).where(ProcessVersion.definition_id == definition.id)
                                    .order_by(ProcessVersion.version.desc()).limit(1))
            if latest is not None and latest.sha256 == parsed.sha256 and not always_new:
                return LoadResult(key, latest.version, latest.sha256, False)
            if status == VersionStatus.RELEASED:
                for old in session.scalars(select(ProcessVersion).where(
                        ProcessVersion.definition_id == definition.id,
                        ProcessVersion.status == VersionStatus.RELEASED)):
                    old.status = VersionStatus.RETIRED
            definition.name = parsed.name
            definition.record_prefix = parsed.record_prefix
            version = ProcessVersion(
                definition_id=definition.id, version=(latest.version + 1) if latest else 1, bpmn=data,
                sha256=parsed.sha256, status=status, source_path=filename,
                spec_json=json.dumps(engine_state.spec_to_json(parsed.spec, parsed.subprocess_specs)),
                serializer_version=engine_state.STATE_FORMAT,
                loaded_by_id=getattr(actor, "id", None),
            )
            session.add(version)
            session.flush()
            audit_event(session, "diagram_loaded", entity="process_versions", entity_id=version.id,
                        new={"key": key, "version": version.version, "sha256": parsed.sha256,
                             "status": status.value, "file": filename})
            return LoadResult(key, version.version, parsed.sha256, True)

    def _check_forms(self, parsed: ParsedDiagram, filename: str) -> None:
        tasks = list(parsed.user_tasks) + ([parsed.start_event] if parsed.start_event else [])
        for ts in tasks:
            props = properties(ts)
            for prop in ("formJsonSchemaFilename", "formUiSchemaFilename"):
                if props.get(prop):
                    try:
                        if prop == "formJsonSchemaFilename":
                            self.forms.schema(props[prop])
                        else:
                            self.forms.ui_schema(props[prop])
                    except FormError as exc:
                        raise ProcessRejected(f"{filename}: task '{ts.name}': {exc}", code="invalid_form") from exc

    def spec_info(self, version: ProcessVersion) -> SpecInfo:
        """The parsed spec of a diagram version, built once per process from its stored JSON."""
        with self._specs_lock:
            info = self._specs.get(version.id)
        if info is None:
            spec, subs = engine_state.spec_from_json(json.loads(version.spec_json))
            roles = {ts.lane for ts in spec.task_specs.values() if getattr(ts, "lane", None)}
            for sub in subs.values():
                roles |= {ts.lane for ts in sub.task_specs.values() if getattr(ts, "lane", None)}
            start = spec.start.outputs[0] if spec.start.outputs else None
            info = SpecInfo(spec, subs, roles, properties(start), getattr(start, "lane", None))
            with self._specs_lock:
                self._specs[version.id] = info
        return info

    def released_versions(self, session: Session) -> list[ProcessVersion]:
        return list(session.scalars(select(ProcessVersion).where(ProcessVersion.status == VersionStatus.RELEASED)
                                    .join(ProcessDefinition).order_by(ProcessDefinition.key)))

    # ------------------------------------------------------------------ records
    def start_record(self, user: User, process_key: str, data: dict, title: str | None = None) -> Record:
        """Start the released version of a process with the start form's data."""
        data = dict(data or {})
        if title and "title" not in data:
            data["title"] = title
        with self.db.unit_of_work(user) as session:
            user = session.get(User, user.id)
            version = self.released_version(session, process_key)
            self.check_may_start(user, version)
            return self.start_record_in(session, user, version, data)

    def check_may_start(self, user: User, version: ProcessVersion) -> None:
        """Raise Forbidden unless this person may start the process by hand: the diagram allows a
        manual start (manualStart is not false) and the person holds the start lane's role."""
        info = self.spec_info(version)
        if not info.manual_start:
            raise Forbidden(f"A {version.definition.name} is started by the system, not by hand "
                            "(the diagram's start event sets manualStart to false).", code="not_startable")
        if info.start_lane and info.start_lane not in user.role_names:
            raise Forbidden(f"Starting a {version.definition.name} needs the role '{info.start_lane}', "
                            "which you do not hold.", code="not_in_role")

    def start_record_by_system(self, process_key: str, data: dict) -> Record:
        """Start the released version of a process as the system account, as a sweep or an assignment
        does: no person, so no role check and manualStart does not apply."""
        with self.db.unit_of_work(None) as session:
            return self.start_record_in(session, None, self.released_version(session, process_key),
                                        dict(data or {}))

    @staticmethod
    def released_version(session: Session, process_key: str) -> ProcessVersion:
        """The released version of a process, or NotFound."""
        version = session.scalar(select(ProcessVersion).join(ProcessDefinition).where(
            ProcessDefinition.key == process_key, ProcessVersion.status == VersionStatus.RELEASED))
        if version is None:
            raise NotFound(f"There is no released process '{process_key}'.")
        return version

    def start_record_in(self, session: Session, user: User | None, version: ProcessVersion, data: dict) -> Record:
        """Start a record inside an open unit of work. The callers decide who may start it: a person
        through start_record (check_may_start), the system through links, assignments and sweeps."""
        user = user if user is not None and user.id is not None else self._system_user(session)
        info = self.spec_info(version)
        form = info.start_properties.get("formJsonSchemaFilename")
        self._validate(form, data)
        number = self._next_number(session, version.definition.record_prefix)
        # The record's own number is part of its data, so diagrams can cite it (e.g. in a linked CAPA).
        data = {**data, "record_number": number}
        wf = BpmnWorkflow(info.spec, info.subprocess_specs, script_engine=self.script_engine)
        for task in wf.get_tasks(state=TaskState.READY):
            task.data.update(data)
        live = engine_state.LiveWorkflow(wf)
        record = Record(
            number=number, process_version_id=version.id, title=str(data.get("title") or "")[:300],
            data=dict(data), created_by_id=user.id,
        )
        session.add(record)
        session.flush()
        self._advance(session, record, live, completed=None, actor=user)
        session.flush()
        self._after_commit(session, record, live)
        return record

    @staticmethod
    def _system_user(session: Session) -> User:
        """The account that timers and other unattended steps act as; it can never log in."""
        import secrets

        user = session.scalar(select(User).where(User.username == "system"))
        if user is None:
            user = User(username="system", full_name="cellqms (automatic step)", active=False,
                        password_hash=credentials.hash_password(secrets.token_urlsafe(32)))
            session.add(user)
            session.flush()
        return user

    def _next_number(self, session: Session, prefix: str) -> str:
        """The next number of a prefix and year. The counter row is created if missing with
        INSERT ... ON CONFLICT DO NOTHING, so two first records started at once both wait on the
        same locked row instead of one failing on the unique constraint."""
        year = self.clock.now().year
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(insert(RecordCounter).values(prefix=prefix, year=year, last=0)
                        .on_conflict_do_nothing(index_elements=["prefix", "year"]))
        counter = session.scalar(select(RecordCounter).where(RecordCounter.prefix == prefix,
                                                             RecordCounter.year == year).with_for_update())
        counter.last += 1
        session.flush()
        return f"{prefix}-{year}-{counter.last:04d}"

    # ------------------------------------------------------------------ tasks
    def complete_task(self, task_id: str, user: User, data: dict, signature: dict | None = None) -> Record:
        """Check, sign, complete and move the engine on, in one transaction (URS-PLT-02/03, SIG-01, SEC-03).

        `signature` is {"password": ..., "meaning": ...} where the task requires one. A wrong
        password is counted and audited in its own transaction; the task stays as it was.
        """
        data = dict(data or {})
        needs_signature = self._precheck(task_id, user, data)
        if needs_signature:
            self._check_signature_request(user, needs_signature, signature)
        with self.db.unit_of_work(user) as session:
            user, task, record, live, engine_task = self._run_step(session, task_id, user, data)
            task.status = TaskStatus.COMPLETED
            task.completed_by_id = user.id
            task.completed_at = utcnow()
            task.submitted_data = data
            if needs_signature:
                # What the signer attests: the record as it stands after their step (an approval binds
                # the investigation it approves); one instance of a multi-instance task attests only
                # its own answer, which never reaches the record's top-level fields.
                attested = () if _is_instance(engine_task) else record.data
                signing.sign(session, signer=user, meaning=needs_signature, record=record, task=task,
                             record_data={k: record.data.get(k) for k in attested}, submitted=data)
            audit_event(session, "task_completed", record_id=record.id, entity="tasks", entity_id=task.id,
                        field=task.bpmn_id, new=data)
            session.flush()
            self._after_commit(session, record, live)
            return record

    def check_completion(self, task_id: str, user: User, data: dict) -> None:
        """Raise what completing the task with `data` would raise, and change nothing.

        The step runs for real inside a transaction that is always rolled back: what only the
        process can tell (a named person without the role the next task needs, a script's
        refusal) is said before the person signs, not after they typed their password.
        """
        data = dict(data or {})
        self._precheck(task_id, user, data)
        try:
            with self.db.unit_of_work(user) as session:
                self._run_step(session, task_id, user, data)
                raise _TrialRun
        except _TrialRun:
            return

    def _precheck(self, task_id: str, user: User, data: dict) -> str | None:
        """Read-only checks before any write (visible, allowed, valid form); the signature meaning."""
        with self.db.sessionmaker() as session:
            task = self._visible_task(session, user, task_id)
            self._check_can_complete(session, user, task)
            self._validate(task.form, data)
            return task.signature_meaning

    def _run_step(self, session: Session, task_id: str, user: User, data: dict):
        """Inside a unit of work: lock the task, check again, run it and move the engine on."""
        user = session.get(User, user.id)
        task = session.get(Task, task_id, with_for_update={"of": Task})
        record = session.get(Record, task.record_id)
        session.info["audit_reason"] = f"{PROCESS_STEP} '{task.name}' completed"
        self._check_can_complete(session, user, task)  # again, inside the transaction
        live = self._live(session, record)
        engine_task = live.workflow.get_task_from_id(_uuid(task.id)) if live else None
        if engine_task is None or engine_task.state != TaskState.READY:
            raise Conflict("This task is no longer open; someone else completed it a moment ago.")
        try:
            engine_task.data.update(data)
            with services.step(self, session, user, record):
                engine_task.run()
            self._advance(session, record, live, completed=engine_task, actor=user)
        except _ENGINE_ERRORS as exc:
            raise ProcessRejected(f"The process could not move on: {_engine_message(exc)}",
                                  code="engine_error") from exc
        return user, task, record, live, engine_task

    def _check_signature_request(self, user: User, meaning: str, signature: dict | None) -> None:
        if not signature or not signature.get("password"):
            raise ValidationFailed([{"path": "signature.password", "message":
                                     f"This task must be signed ({meaning}): enter your password."}])
        if signature.get("meaning") not in (None, meaning):
            raise ValidationFailed([{"path": "signature.meaning", "message":
                                     f"The meaning of this signature is '{meaning}'."}])
        self.authenticate(user.username, signature["password"], purpose="signature")

    def _check_can_complete(self, session: Session, user: User, task: Task) -> None:
        user = session.get(User, user.id)
        refusal = why_not(session, user, task)
        if refusal is None:
            return
        if refusal.code == "conflict":
            raise Conflict(refusal.message)
        raise Forbidden(refusal.message, code=refusal.code, details=refusal.details)

    def _validate(self, form: str | None, data: dict) -> None:
        bad_keys = [k for k in data if not isinstance(k, str) or k.startswith("_") or not k]
        if bad_keys:
            raise ValidationFailed([{"path": str(k), "message": "Field names may not start with '_'."}
                                    for k in bad_keys])
        if form:
            errors = self.forms.errors(form, data, today=self.clock.now().date())
            if errors:
                raise ValidationFailed(errors)

    def _live(self, session: Session, record: Record) -> engine_state.LiveWorkflow:
        live = self.cache.take(record.id, record.version)
        if live is None:
            info = self.spec_info(record.process_version)
            live = engine_state.load(session, record, info.spec, info.subprocess_specs, self.script_engine)
        return live

    def _after_commit(self, session: Session, record: Record, live: engine_state.LiveWorkflow) -> None:
        """Keep the live workflow only if the transaction commits; a rollback leaves no trace in memory."""
        live.version = record.version
        record_id = record.id
        session.info.setdefault("on_commit", []).append(lambda: self.cache.put(record_id, live))

    def _advance(self, session: Session, record: Record, live: engine_state.LiveWorkflow, completed,
                 actor: User | None = None) -> None:
        """Run the engine to its next wait state, then bring task rows, data, timers and status in line."""
        wf = live.workflow
        try:
            with services.step(self, session, actor, record):
                wf.do_engine_steps()
        except _ENGINE_ERRORS as exc:
            raise ProcessRejected(f"The process could not move on: {_engine_message(exc)}",
                                  code="engine_error") from exc
        # The record's data is the process's data: what completed steps and scripts produced. One
        # instance of a multi-instance task has data of its own (its item, its answer): that reaches
        # the record only through the task's output collection, never by overwriting top-level fields.
        data = dict(record.data or {})
        if completed is not None and not _is_instance(completed):
            data.update(_plain(completed.data))
        for t in wf.get_tasks(state=TaskState.READY | TaskState.WAITING | TaskState.STARTED):
            if not _is_instance(t):
                data.update(_plain(t.data))
        completed_now = wf.is_completed()  # walks the task tree: ask once
        if completed_now and wf.last_task is not None:
            data.update(_plain(wf.last_task.data))
        record.data = data
        self._sync_tasks(session, record, wf)
        self._sync_timers(session, record, wf)
        if completed_now and record.status == RecordStatus.OPEN:
            record.status = RecordStatus.CLOSED
            record.closed_at = utcnow()
        engine_state.save(session, record, live)

    def _sync_tasks(self, session: Session, record: Record, wf: BpmnWorkflow) -> None:
        ready = {str(t.id): t for t in wf.get_tasks(state=TaskState.READY, manual=True)}
        # Ids only: with a thousand open instances, loading whole rows (and their record) per step
        # made a multi-instance task cost O(n^2) in all.
        open_ids = set(session.scalars(select(Task.id).where(
            Task.record_id == record.id, Task.status == TaskStatus.OPEN)))
        for task_id in open_ids - set(ready):
            engine_task = wf.get_task_from_id(_uuid(task_id))
            if engine_task is None or not engine_task.has_state(TaskState.COMPLETED):
                session.get(Task, task_id).status = TaskStatus.CANCELLED
        for task_id in set(ready) - open_ids:
            if session.get(Task, task_id) is None:
                session.add(self._task_row(session, record, ready[task_id]))

    def _task_row(self, session: Session, record: Record, engine_task) -> Task:
        spec = engine_task.task_spec
        props = properties(spec)
        segregate = [s.strip() for s in (props.get("segregateFrom") or "").split(",") if s.strip()]
        start_ids = {ts.name for ts in wf_start_events(engine_task.workflow)}
        segregate = [CREATOR if s in start_ids else s for s in segregate]
        assignee = due_at = None
        data = _plain(engine_task.data)
        if props.get("assignee"):
            assignee = str(evaluate(props["assignee"], data, self.clock) or "").strip() or None
            if assignee:
                self._check_assignee(session, assignee, spec.lane, props["assignee"])
        if props.get("dueAt"):
            value = evaluate(props["dueAt"], data, self.clock)
            due_at = parse_datetime(value) if value else None
        return Task(
            id=str(engine_task.id), record_id=record.id, bpmn_id=getattr(spec, "bpmn_id", None) or spec.name,
            name=spec.bpmn_name or spec.name,
            lane=spec.lane, role=spec.lane, assignee=assignee, form=props.get("formJsonSchemaFilename"),
            ui_form=props.get("formUiSchemaFilename"), signature_meaning=props.get("signatureMeaning") or None,
            segregate_from=segregate, due_at=due_at,
            requires_training=[s.strip() for s in (props.get("requiresTraining") or "").split(",") if s.strip()],
            instructions=(spec.extensions or {}).get("instructionsForEndUser") or "",
            item=_instance_item(engine_task),
        )

    @staticmethod
    def _check_assignee(session: Session, username: str, role: str | None, expression: str) -> None:
        user = session.scalar(select(User).where(User.username == username))
        ok = user is not None and user.active and (role is None or role in user.role_names)
        if not ok:
            raise ValidationFailed([{"path": expression, "message":
                                     f"'{username}' is not an active user holding the role '{role}'."}])

    def _sync_timers(self, session: Session, record: Record, wf: BpmnWorkflow) -> None:
        wanted = {}
        for event in wf.waiting_events():
            # SpiffWorkflow 3.2 reports the concrete class (TimeDate/DurationTimer/CycleTimerEventDefinition).
            if event.event_type.endswith(_TIMER_EVENT_SUFFIXES) and isinstance(event.value, str) and event.value:
                due = parse_datetime(event.value)
                wanted[(event.name, due)] = True
        existing = session.scalars(select(TimerJob).where(TimerJob.record_id == record.id,
                                                          TimerJob.fired_at.is_(None))).all()
        for job in existing:
            key = (job.event_name, job.due_at)
            if key in wanted:
                wanted.pop(key)
            else:
                job.fired_at = utcnow()
                job.last_error = "no longer waiting"
        for name, due in wanted:
            session.add(TimerJob(record_id=record.id, event_name=name, due_at=due))

    # ------------------------------------------------------------------ timers
    def fire_due_timers(self, limit: int = 50) -> int:
        """Fire every timer that is due; safe with several workers (rows claimed with SKIP LOCKED).

        Due means due by the real clock, which is what SpiffWorkflow's timers compare with. A
        timer whose step fails is not retried at once: its error is kept, it is pushed back with
        a growing delay, and after five attempts it is given up and audited, so one broken record
        never blocks the timers of the others.
        """
        fired = 0
        for _ in range(limit):
            claimed: list[int] = []
            try:
                outcome = self._fire_next_timer(claimed)
            except CellqmsError as exc:
                if not claimed:
                    raise
                self._timer_failed(claimed[0], exc)
                continue
            if outcome is None:
                break
            fired += outcome
        return fired

    def _fire_next_timer(self, claimed: list[int]) -> int | None:
        """Claim and fire the earliest due timer: None when nothing is due, else 1 (fired) or 0 (skipped)."""
        with self.db.unit_of_work(None, reason="timer due") as session:
            job = session.scalar(
                select(TimerJob).where(TimerJob.fired_at.is_(None), TimerJob.due_at <= utcnow())
                .order_by(TimerJob.due_at).limit(1).with_for_update(skip_locked=True))
            if job is None:
                return None
            claimed.append(job.id)
            session.info["audit_reason"] = f"{PROCESS_STEP} timer '{job.event_name}' fired"
            record = session.get(Record, job.record_id, with_for_update={"of": Record})
            job.attempts += 1
            job.fired_at = utcnow()
            if record.status != RecordStatus.OPEN:
                job.last_error = f"record is {record.status.value}"
                return 0
            live = self._live(session, record)
            wf = live.workflow
            try:
                with services.step(self, session, None, record):
                    for _ in range(2):  # the first pass may only mark the timer ready (ENGINE_NOTES)
                        wf.refresh_timers()
                        wf.do_engine_steps()
            except _ENGINE_ERRORS as exc:
                raise ProcessRejected(f"Timer on {record.number} failed: {_engine_message(exc)}") from exc
            audit_event(session, "timer_fired", record_id=record.id, entity="timer_jobs", entity_id=job.id,
                        field=job.event_name, new={"due_at": job.due_at})
            self._advance(session, record, live, completed=None)
            session.flush()
            self._after_commit(session, record, live)
            return 1

    def _timer_failed(self, job_id: int, exc: CellqmsError) -> None:
        """Keep the error on the job and push it back; give up (audited) after five attempts."""
        log.error("timer failed: %s", exc.message)
        with self.db.unit_of_work(None, reason="timer failed") as session:
            job = session.get(TimerJob, job_id)
            job.attempts += 1
            job.last_error = exc.message[:2000]
            if job.attempts >= 5:
                job.fired_at = utcnow()
                audit_event(session, "timer_failed", record_id=job.record_id, entity="timer_jobs", entity_id=job.id,
                            field=job.event_name, new={"attempts": job.attempts}, reason=job.last_error)
            else:
                job.due_at = utcnow() + dt.timedelta(minutes=2 ** job.attempts)

    # ------------------------------------------------------------------ reading
    def _visible_task(self, session: Session, user: User, task_id: str) -> Task:
        task = session.get(Task, str(task_id))
        if task is None or not self.may_see_record(session, user, task.record):
            raise NotFound(f"There is no task '{task_id}' you may see.")
        return task

    def may_see_record(self, session: Session, user: User, record: Record) -> bool:
        """Whether the person may open the record (its page, its API resource)."""
        user = session.get(User, user.id)
        return can_see_record(user, record, self.spec_info(record.process_version).roles)

    def get_record(self, session: Session, user: User, record_id: str) -> Record:
        record = session.get(Record, str(record_id))
        if record is None:
            record = session.scalar(select(Record).where(Record.number == str(record_id)))
        if record is None or not self.may_see_record(session, user, record):
            raise NotFound(f"There is no record '{record_id}' you may see.")
        return record

    def get_task(self, session: Session, user: User, task_id: str) -> Task:
        return self._visible_task(session, user, task_id)

    def open_tasks(self, session: Session, user: User) -> list[Task]:
        """The open tasks the user's roles allow them to complete (inbox, GET /tasks)."""
        user = session.get(User, user.id)
        roles = list(user.role_names)
        rows = session.scalars(
            select(Task).where(Task.status == TaskStatus.OPEN, Task.role.in_(roles),
                               or_(Task.assignee.is_(None), Task.assignee == user.username))
            .options(joinedload(Task.record).defer(Record.data))  # an inbox never needs the records' data
            .order_by(Task.due_at.is_(None), Task.due_at, Task.created_at, Task.bpmn_id, Task.id)
        ).all()
        done = completed_by(session, user, list({t.record_id for t in rows if t.segregate_from}))
        return [t for t in rows if why_not(session, user, t, done) is None]

    def record_tasks(self, session: Session, record: Record) -> list[Task]:
        return list(session.scalars(select(Task).where(Task.record_id == record.id).order_by(Task.created_at)))

    def signatures(self, session: Session, record: Record) -> list[tuple[Signature, bool]]:
        """Each signature of the record with whether it still verifies (URS-SIG-03)."""
        tasks = {t.id: t for t in self.record_tasks(session, record)}
        changes = session.execute(
            select(AuditEntry.at, AuditEntry.action, AuditEntry.field, AuditEntry.new, AuditEntry.reason)
            .where(AuditEntry.record_id == record.id,
                   or_(AuditEntry.field.like("data.%"), AuditEntry.action == "data_corrected"))
            .order_by(AuditEntry.seq)).all()
        out = []
        for sig in session.scalars(select(Signature).where(Signature.record_id == record.id)
                                   .order_by(Signature.signed_at)):
            # field -> value a later step of the process set (e.g. a rework round); a correction or any
            # change made outside a process step after that takes the field out again.
            later: dict = {}
            for at, action, field, new, reason in changes:
                if at <= sig.signed_at:
                    continue
                key = (field or "").split(".", 1)[-1]
                if action == "update" and (reason or "").startswith(PROCESS_STEP):
                    later[key] = new
                else:
                    later.pop(key, None)
            out.append((sig, signing.verify(sig, record, tasks.get(sig.task_id), later)))
        return out

    def links(self, session: Session, record: Record) -> list[RecordLink]:
        return list(session.scalars(select(RecordLink).where(
            or_(RecordLink.source_id == record.id, RecordLink.target_id == record.id))))

    def search_records(self, session: Session, user: User, *, process: str | None = None,
                       status: str | None = None, q: str | None = None, page: int = 1,
                       per_page: int = 50, number: str | None = None, created_from: dt.datetime | None = None,
                       created_to: dt.datetime | None = None, person: str | None = None,
                       ) -> tuple[list[Record], int]:
        """Records the user may see, newest first, filtered (URS-REP-02).

        `person` matches a user name or part of a full name of whoever raised the record or
        completed one of its steps; `created_to` is exclusive.
        """
        user = session.get(User, user.id)
        stmt = select(Record).join(ProcessVersion).join(ProcessDefinition)
        if number:
            stmt = stmt.where(contains(Record.number, number))
        if created_from:
            stmt = stmt.where(Record.created_at >= created_from)
        if created_to:
            stmt = stmt.where(Record.created_at < created_to)
        if person:
            who = select(User.id).where(or_(contains(User.username, person), contains(User.full_name, person)))
            stmt = stmt.where(or_(Record.created_by_id.in_(who), Record.id.in_(
                select(Task.record_id).where(Task.completed_by_id.in_(who)))))
        if process:
            stmt = stmt.where(ProcessDefinition.key == process)
        if status:
            stmt = stmt.where(Record.status == status)
        if q:
            stmt = stmt.where(or_(contains(Record.number, q), contains(Record.title, q)))
        if not (user.role_names & {"QA", "QA Head", "Auditor", "Admin"}):
            visible = [v.id for v in session.scalars(select(ProcessVersion))
                       if self.spec_info(v).roles & user.role_names]
            stmt = stmt.where(or_(Record.process_version_id.in_(visible), Record.created_by_id == user.id))
        total = session.scalar(select(func.count()).select_from(stmt.subquery()))
        rows = session.scalars(stmt.order_by(Record.created_at.desc(), Record.number.desc())
                               .offset((max(page, 1) - 1) * per_page).limit(per_page)).all()
        return list(rows), total


def wf_start_events(wf):
    from SpiffWorkflow.bpmn.specs.defaults import StartEvent

    return [ts for ts in wf.spec.task_specs.values() if isinstance(ts, StartEvent)]


def _uuid(value: str):
    from uuid import UUID

    try:
        return UUID(str(value))
    except ValueError:
        return None


class _TrialRun(Exception):
    """Ends check_completion's unit of work so that it rolls back."""


def _is_instance(task) -> bool:
    """True for one instance of a multi-instance task: its parent's spec is the multi-instance spec,
    whose `task_spec` names the instances' spec (SpiffWorkflow 3.2)."""
    parent = task.parent
    return parent is not None and isinstance(parent.task_spec, MultiInstanceTask) and \
        parent.task_spec.task_spec == task.task_spec.name


def _instance_item(engine_task) -> dict | None:
    """The item one instance of a multi-instance task is for, {input item name: value}: the task
    itself is the instance, or it lies in a sub-process that is (a reviewer's review). None else."""
    workflow = engine_task.workflow
    parent_id = getattr(workflow, "parent_task_id", None)  # set on a sub-process's own workflow
    enclosing = workflow.top_workflow.get_task_from_id(parent_id) if parent_id else None
    for task in (engine_task, enclosing):
        if task is not None and _is_instance(task):
            item = task.parent.task_spec.input_item
            if item is None or item.bpmn_id not in engine_task.data:
                return None
            return _plain({item.bpmn_id: engine_task.data[item.bpmn_id]})
    return None


def _plain(data: dict) -> dict:
    return {k: v for k, v in (data or {}).items() if isinstance(k, str) and not k.startswith("_")
            and k != "data_objects"}


def _engine_message(exc: Exception) -> str:
    if isinstance(exc, CellqmsError):
        return exc.message
    parts = [str(exc)]
    notes = getattr(exc, "__notes__", None)
    if notes:
        parts += notes
    return " ".join(parts)[:1000]


def _locked_message(until: dt.datetime | None, minutes: int) -> str:
    if until is None:
        return "The account is locked. Try again later or ask an administrator."
    remaining = max(1, int((until - utcnow()).total_seconds() // 60) + 1)
    return f"The account is locked after repeated failed attempts; try again in about {remaining} minute(s)."
