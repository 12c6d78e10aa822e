"""
The agent's side of the web port: C{GET /health} (whether every service
the agent holds is registered) and the agent's metrics.
"""

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from twisted.web.resource import Resource

from txinferno.agent import queryText
from txinferno.web.query import jsonResponse

__all__ = ["HealthResource", "AgentCollector", "agentHealth"]


def agentHealth(agent):
    """
    @type agent: L{txinferno.agent.Agent}
    @return: C{healthy} (every service held is registered), and each
        service's C{registered} state.
    @rtype: L{dict}
    """
    services = {
        name: {"registered": task.registered} for name, task in sorted(agent.services.items())
    }
    monitors = [
        {"query": queryText(logger.query), "lastResync": logger.lastResync}
        for logger in agent.changeLoggers
    ]
    healthy = all(s["registered"] for s in services.values())
    return {"healthy": healthy, "services": services, "monitors": monitors}


class HealthResource(Resource):
    """
    C{/health}: L{agentHealth} as JSON, with 200 when healthy, else 503.
    """

    isLeaf = True

    def __init__(self, agent):
        Resource.__init__(self)
        self.agent = agent

    def render_GET(self, request):
        health = agentHealth(self.agent)
        return jsonResponse(request, health, 200 if health["healthy"] else 503)


class AgentCollector:
    """
    The agent's metrics (see docs/operator.md for each one).
    """

    def __init__(self, agent):
        """
        @type agent: L{txinferno.agent.Agent}
        """
        self.agent = agent

    def collect(self):
        agent = self.agent
        tasks = list(agent.services.values())
        yield GaugeMetricFamily(
            "txinferno_agent_services", "Services the agent holds.", value=len(tasks)
        )
        yield GaugeMetricFamily(
            "txinferno_agent_services_registered",
            "Services the agent holds that are registered.",
            value=sum(1 for t in tasks if t.registered),
        )
        yield CounterMetricFamily(
            "txinferno_agent_registrations_lost",
            "Registrations held and then lost.",
            value=agent.retired["losses"] + sum(t.losses for t in tasks),
        )
        failures = agent.retired["failures"].copy()
        for task in tasks:
            failures.update(task.failures)
        retries = CounterMetricFamily(
            "txinferno_agent_registration_retries",
            "Failed registration attempts, each retried, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(failures.items()):
            retries.add_metric([reason], count)
        yield retries
        yield GaugeMetricFamily(
            "txinferno_agent_monitors", "Monitors the agent runs.", value=len(agent.monitors)
        )
        resync = GaugeMetricFamily(
            "txinferno_agent_monitor_last_resync_timestamp_seconds",
            "When each monitor's view last matched the registry again.",
            labels=["query"],
        )
        for logger in agent.changeLoggers:
            if logger.lastResync is not None:
                resync.add_metric([queryText(logger.query)], logger.lastResync)
        yield resync
        commands = agent.changeCommands
        yield CounterMetricFamily(
            "txinferno_agent_hook_runs",
            "Runs of the --on-change command that ended.",
            value=sum(c.runs for c in commands),
        )
        yield CounterMetricFamily(
            "txinferno_agent_hook_failures",
            "Runs of the --on-change command that failed.",
            value=sum(c.failures for c in commands),
        )
