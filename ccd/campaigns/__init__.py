"""Outbound campaigns: contact lists, calling windows, do-not-call, retry rules, the pacer
(preview, progressive, predictive, notification) and the runner that dials through AMI
Originate; notification and CSAT survey FastAGI routes.

The decisions (:mod:`~ccd.campaigns.pacer`, :mod:`~ccd.campaigns.rules`,
:mod:`~ccd.campaigns.windows`, :mod:`~ccd.campaigns.importer`) are pure and take the time
as a parameter; :mod:`~ccd.campaigns.runner` and :mod:`~ccd.campaigns.service` are the
thin adapters to AMI, PostgreSQL and APScheduler.
"""
