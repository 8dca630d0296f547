"""A whole-cluster restart (deploy/local-cluster stop, then start over the
same directory). Its own file so that it runs after test_cluster_faults.py
(files run in name order): it stops the session's shared cluster, and the
crash tests are meant for a cluster up since the session began."""

from __future__ import annotations

import pytest
import requests

from test_cluster import check_stored, complete, create, data_of, finish


@pytest.fixture(autouse=True)
def _all_up(cluster):
    cluster.ensure_all_up()
    yield


def test_the_whole_cluster_restarts_over_its_data(cluster):
    """`deploy/local-cluster stop` then `start` over the same directory (as
    its usage promises): the Garage nodes find each other again, what was
    stored is still there and a new upload goes through."""
    before = data_of(200 * 1024, 9)
    c = create(cluster, cluster.lb, before, "put")
    headers = {k: v for k, v in c["put"]["headers"].items() if k.lower() != "content-length"}
    assert requests.put(c["put"]["url"], data=before, headers=headers, timeout=60).status_code == 200
    receipt, key = complete(cluster.lb, c)
    cluster.remember(key)
    cluster.stop()
    cluster.start()
    check_stored(cluster, key, before)
    after = data_of(300 * 1024, 10)
    c = create(cluster, cluster.lb, after, "put")
    headers = {k: v for k, v in c["put"]["headers"].items() if k.lower() != "content-length"}
    assert requests.put(c["put"]["url"], data=after, headers=headers, timeout=60).status_code == 200
    receipt, key = complete(cluster.lb, c)
    finish(cluster, receipt, key, after, cluster.instances[0])
