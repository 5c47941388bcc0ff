defmodule Demo.Bank do
  @moduledoc "A GenServer keeping account balances; tellers cast deposits and call for balances."
  use GenServer

  defstruct accounts: %{}, transactions: 0

  def start_link(_), do: GenServer.start_link(__MODULE__, %__MODULE__{}, name: __MODULE__)
  def deposit(account, amount), do: GenServer.cast(__MODULE__, {:deposit, account, amount})
  def balance(account), do: GenServer.call(__MODULE__, {:balance, account})

  @impl true
  def init(state), do: {:ok, state}

  @impl true
  def handle_cast({:deposit, account, amount}, state) do
    accounts = Map.update(state.accounts, account, amount, &(&1 + amount))
    {:noreply, %{state | accounts: accounts, transactions: state.transactions + 1}}
  end

  @impl true
  def handle_call({:balance, account}, _from, state) do
    {:reply, Map.get(state.accounts, account, 0), state}
  end
end
