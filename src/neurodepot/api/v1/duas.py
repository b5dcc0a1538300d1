"""Placeholder: filled in by the consent issue's work on `duas`."""

from fastapi import APIRouter

from neurodepot.api.schemas import GUARDED_ERRORS

router = APIRouter(tags=["duas"], responses=GUARDED_ERRORS)
