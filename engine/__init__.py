"""The process runtime around SpiffWorkflow: the only package that imports it."""
from sqlalchemy import event
from sqlalchemy.orm import Session


@event.listens_for(Session, "after_commit")
def _run_on_commit(session):
    for callback in session.info.pop("on_commit", []):
        callback()


@event.listens_for(Session, "after_rollback")
def _drop_on_rollback(session):
    session.info.pop("on_commit", None)
