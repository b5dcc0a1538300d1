"""The native REST API, mounted at `/api/v1`."""

from fastapi import APIRouter

from neurodepot.api.v1 import (
    accounts,
    bids,
    deid,
    hierarchy,
    jobs,
    prearchive,
    resources,
    session,
    tokens,
    users,
)

router = APIRouter(prefix="/api/v1")
router.include_router(hierarchy.router)
router.include_router(resources.router)
router.include_router(jobs.router)
router.include_router(prearchive.router)
router.include_router(bids.router)
router.include_router(session.router)
router.include_router(accounts.router)
router.include_router(users.router)
router.include_router(tokens.router)
router.include_router(deid.router)
