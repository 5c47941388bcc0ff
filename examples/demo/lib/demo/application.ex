defmodule Demo.Application do
  @moduledoc "The demo's supervision tree: a counter, a bank with tellers, a task pool and a flaky worker."
  use Application

  @impl true
  def start(_type, _args) do
    children = [
      Demo.Counter,
      Demo.Bank,
      {Task.Supervisor, name: Demo.TaskPool},
      Demo.Flaky
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: Demo.Supervisor)
  end
end
