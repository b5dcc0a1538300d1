"""The native REST API, mounted at `/api/v1`."""

from fastapi import APIRouter

from neurodepot.api.v1 import (
    accounts,
    bids,
    consent,
    deid,
    duas,
    gdpr,
    hierarchy,
    jobs,
    prearchive,
    resources,
    session,
    shared,
    sharing,
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
router.include_router(consent.router)
router.include_router(sharing.router)
router.include_router(duas.router)
router.include_router(shared.router)
router.include_router(gdpr.router)
