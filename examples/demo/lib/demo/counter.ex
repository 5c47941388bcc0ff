defmodule Demo.Counter do
  @moduledoc "A GenServer holding a count."
  use GenServer

  def start_link(_), do: GenServer.start_link(__MODULE__, 0, name: __MODULE__)
  def increment(by \\ 1), do: GenServer.call(__MODULE__, {:increment, by})
  def value, do: GenServer.call(__MODULE__, :value)

  @impl true
  def init(count), do: {:ok, count}

  @impl true
  def handle_call({:increment, by}, _from, count), do: {:reply, count + by, count + by}
  def handle_call(:value, _from, count), do: {:reply, count, count}
end
