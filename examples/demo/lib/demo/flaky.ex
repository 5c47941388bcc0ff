defmodule Demo.Flaky do
  @moduledoc "A worker that crashes on every third job; its supervisor restarts it."
  use GenServer

  def start_link(_), do: GenServer.start_link(__MODULE__, 0, name: __MODULE__)
  def work(job), do: GenServer.cast(__MODULE__, {:work, job})

  @impl true
  def init(done), do: {:ok, done}

  @impl true
  def handle_cast({:work, job}, done) do
    if rem(done + 1, 3) == 0, do: raise("job #{job} failed: flaky worker gave up")
    {:noreply, done + 1}
  end
end
