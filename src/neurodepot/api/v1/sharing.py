"""Placeholder: filled in by the consent issue's work on `sharing`."""

from fastapi import APIRouter

from neurodepot.api.schemas import GUARDED_ERRORS

router = APIRouter(tags=["sharing"], responses=GUARDED_ERRORS)
